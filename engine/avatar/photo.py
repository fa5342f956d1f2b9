"""Avatars from one photo: a synthesised idle loop and training frames with a moving mouth.

A photo has no motion to learn from, so the build makes some by warping the photo with
its own landmarks (piecewise-affine over a Delaunay triangulation, anchored at the image
border so only the face moves):

    rest_face(face68)                   (68, 2) the photo's face with the lips closed and
                                        a smile relaxed: the avatar's neutral, so that a
                                        pause closes the mouth even when the photo shows
                                        teeth
    idle_loop(image, face68, frames)    (T, H, W, 3) the loop: the face at rest, a slow
                                        head sway and nod, breathing zoom and two blinks
    motion_frames(image, face68, count) (count, H, W, 3) training-only frames: the jaw and
                                        lips opened from rest by growing amounts, the
                                        mouth narrowed or spread (the inside filled: the
                                        photo's teeth under the upper lip, dark below),
                                        then expressions (brows raised or lowered, eyes
                                        widened or narrowed, mouth corners up or down)
                                        with openings, so the generator has seen every
                                        shape before the audio or an emotion asks for it
    express(face68, ...)                (68, 2) brows, eyes and mouth corners moved
    pose_face(image, face68, target68)  the photo warped to a target shape, mouth filled
    warp_face(image, src68, dst68)      the warp they all use

face68: (68, 2) iBUG landmarks in image pixels.
"""

import cv2
import numpy as np

from engine.constants import JAW

UPPER_LIDS = ((37, 41), (38, 40), (43, 47), (44, 46))  # (upper, lower) eyelid pairs
INNER_MOUTH = list(range(60, 68))
INNER_PAIRS = ((61, 67), (62, 66), (63, 65))  # (upper, lower) inner-lip points
OUTER_PAIRS = ((50, 58), (51, 57), (52, 56))  # the outer-lip points above and below them
CORNERS = ((48, 60, (49, 59), 1), (54, 64, (53, 55), -1))  # outer, inner, neighbours, side
DROPPING = [55, 56, 57, 58, 59, 65, 66, 67, 48, 54, 60, 64]  # points the jaw carries down
CHIN = list(range(4, 13))  # jaw points that drop with the chin
MOUTH_DARK = (40, 18, 20)  # RGB of the mouth's inside
SEAM_GAP = 0.012  # closed inner lips stay this far apart (x IOD): coinciding points would
# merge in the triangulation and map the upper lip from the lower one
LIP_EDGE = 0.35  # FaceMesh's inner lip sits this far (of the lip's thickness) inside the
# visible lip edge; the warp takes the lips from outside it, so no teeth are carried along
RELAX_NARROW = 0.12  # a smile's corners come in by up to this fraction of half the width
RELAX_LOWER = 0.05  # ... and down by up to this much (x IOD) when the mouth is relaxed


def _anchors(width: int, height: int, face: np.ndarray) -> np.ndarray:
    """Fixed points: the image border and a ring well outside the face."""
    border = [(x, y) for x in np.linspace(0, width - 1, 5) for y in (0, height - 1)]
    border += [(x, y) for y in np.linspace(0, height - 1, 5)[1:-1] for x in (0, width - 1)]
    centre = face.mean(axis=0)
    radius = 1.6 * np.abs(face - centre).max(axis=0)
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    ring = centre + np.stack([np.cos(angles), np.sin(angles)], 1) * radius
    ring = np.clip(ring, 0, [width - 1, height - 1])
    return np.concatenate([np.array(border, dtype=np.float64), ring])


def warp_face(image: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Move the (68, 2) points src to dst, carrying the pixels along (piecewise affine)."""
    height, width = image.shape[:2]
    anchors = _anchors(width, height, src)
    src_all = np.concatenate([src, anchors]).astype(np.float32)
    dst_all = np.concatenate([dst, anchors]).astype(np.float32)
    subdiv = cv2.Subdiv2D((0, 0, width, height))
    for x, y in dst_all:
        subdiv.insert((float(np.clip(x, 0, width - 1)), float(np.clip(y, 0, height - 1))))
    out = image.copy()
    lookup = {(round(float(x), 2), round(float(y), 2)): i for i, (x, y) in enumerate(dst_all)}
    # cv2's stubs say a sequence of Vec6f; it returns an (N, 6) float32 array
    for tri in subdiv.getTriangleList().reshape(-1, 3, 2):  # type: ignore[attr-defined]
        keys = [(round(float(x), 2), round(float(y), 2)) for x, y in tri]
        if not all(k in lookup for k in keys):
            continue
        index = [lookup[k] for k in keys]
        d, s = dst_all[index], src_all[index]
        if np.allclose(d, s, atol=0.05):
            continue  # nothing moves here
        x0, y0 = np.floor(d.min(axis=0)).astype(int)
        x1, y1 = np.ceil(d.max(axis=0)).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if x1 <= x0 or y1 <= y0:
            continue
        matrix = cv2.getAffineTransform((d - [x0, y0]).astype(np.float32), s.astype(np.float32))
        patch = cv2.warpAffine(
            image,
            matrix,
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT,
        )
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        # cv2's stubs want a sequence for the colour; a number is the documented Scalar(n)
        cv2.fillConvexPoly(mask, np.round(d - [x0, y0]).astype(np.int32), 1)  # type: ignore[call-overload]
        region = out[y0:y1, x0:x1]
        region[mask.astype(bool)] = patch[mask.astype(bool)]
    return out


def _eye_opening(face: np.ndarray) -> float:
    return float(np.mean([face[lo, 1] - face[up, 1] for up, lo in UPPER_LIDS]))


def blink(face: np.ndarray, closure: float) -> np.ndarray:
    """(68, 2) -> (68, 2) with the upper lids lowered by closure (0 open, 1 shut)."""
    moved = face.copy()
    for up, lo in UPPER_LIDS:
        moved[up] = face[up] + closure * 0.9 * (face[lo] - face[up])
    return moved


def _iod(face: np.ndarray) -> float:
    return float(np.linalg.norm(face[45] - face[36]))


def rest_face(face: np.ndarray) -> np.ndarray:
    """(68, 2) -> (68, 2): the inner lips brought together (the outer lips follow part
    of the way) and a smile's corners relaxed in and down, in proportion to how far the
    mouth is wider than a neutral one (0.6 IOD). A closed, neutral mouth barely moves."""
    iod = _iod(face)
    moved = face.copy()
    gap = np.array([0.0, SEAM_GAP * iod])
    for (up, lo), (outer_up, outer_lo) in zip(INNER_PAIRS, OUTER_PAIRS, strict=True):
        middle = (face[up] + face[lo]) / 2
        shift_up = np.maximum(middle - gap - face[up], 0.0) * [0, 1]  # down only
        shift_lo = np.minimum(middle + gap - face[lo], 0.0) * [0, 1]  # up only
        moved[[up, outer_up]] += [shift_up, 0.6 * shift_up]
        moved[[lo, outer_lo]] += [shift_lo, 0.6 * shift_lo]
    moved[[49, 53], 1] += 0.3 * (moved[50, 1] - face[50, 1])
    moved[[55, 59], 1] += 0.3 * (moved[58, 1] - face[58, 1])
    width = float(np.linalg.norm(face[54] - face[48]))
    smile = float(np.clip((width / iod - 0.6) / 0.1, 0.0, 1.0))  # 0 neutral .. 1 wide smile
    for outer, inner, neighbours, side in CORNERS:
        shift = smile * np.array([side * RELAX_NARROW * width / 2, RELAX_LOWER * iod])
        moved[outer] += shift
        moved[inner] += 0.9 * shift
        moved[list(neighbours)] += 0.5 * shift
    return moved


def open_mouth(face: np.ndarray, amount: float, spread: float = 0.0) -> np.ndarray:
    """(68, 2) -> (68, 2) with the jaw dropped by amount x 25 % of the eye distance (the
    lower lip most in the middle, a quarter at the corners) and the mouth widened by
    spread x 10 % of its width (negative: rounded, as for "oo")."""
    drop = amount * 0.25 * _iod(face)
    moved = face.copy()
    centre = face[[48, 54], 0].mean()
    half = abs(face[54, 0] - face[48, 0]) / 2
    weight = np.maximum(0.25, 1 - ((face[DROPPING, 0] - centre) / half) ** 2)
    moved[DROPPING, 1] += drop * weight
    moved[CHIN, 1] += drop * np.sin(np.linspace(0.3, np.pi - 0.3, len(CHIN)))
    mouth = list(range(48, 68))
    moved[mouth, 0] = centre + (moved[mouth, 0] - centre) * (1 + 0.1 * spread - 0.08 * amount)
    return moved


BROWS = (list(range(17, 22)), list(range(22, 27)))  # right brow outer->inner, left inner->outer
LOWER_LIDS = (40, 41, 46, 47)


def express(
    face: np.ndarray,
    inner_brows: float = 0.0,
    outer_brows: float = 0.0,
    eyes: float = 0.0,
    corners: float = 0.0,
) -> np.ndarray:
    """(68, 2) -> (68, 2) with an expression, each amount in [-1, 1] (positive: up or
    wider): the brows' inner and outer ends raised by up to 12 % of the eye distance
    (points between follow), the eyes widened by up to 5 % (the lower lids a third of
    that), the mouth corners raised by up to 5 % (FaceMesh sees about 60 % of a brow's
    and eyelid's move, all of a corner's; real expressions reach 8, 6 and 3 %). 0 everywhere is the face itself."""
    iod = _iod(face)
    moved = face.copy()
    inward = np.linspace(0.0, 1.0, 5)
    for brow, weight in zip(BROWS, (inward, inward[::-1]), strict=True):
        lift = (inner_brows * weight + outer_brows * (1 - weight)) * 0.12 * iod
        moved[brow, 1] -= lift
    for up, _ in UPPER_LIDS:
        moved[up, 1] -= eyes * 0.05 * iod
    moved[list(LOWER_LIDS), 1] += eyes * 0.05 / 3 * iod
    for outer, inner, neighbours, _ in CORNERS:
        moved[[outer, inner], 1] -= corners * 0.05 * iod
        moved[list(neighbours), 1] -= 0.5 * corners * 0.05 * iod
    return moved


def _lip_source(face: np.ndarray) -> np.ndarray:
    """(68, 2) the photo's landmarks with the inner lips moved out to the lips' edge."""
    source = face.copy()
    for (up, lo), (outer_up, outer_lo) in zip(INNER_PAIRS, OUTER_PAIRS, strict=True):
        source[up] += LIP_EDGE * (face[outer_up] - face[up])
        source[lo] += LIP_EDGE * (face[outer_lo] - face[lo])
    return source


def _polygon(shape: tuple[int, ...], points: np.ndarray) -> np.ndarray:
    """(H, W) uint8 mask, 255 inside the (N, 2) polygon (drawn at quarter-pixel precision)."""
    mask = np.zeros(shape[:2], np.uint8)
    # cv2's stubs want a sequence for the colour; a number is the documented Scalar(n)
    cv2.fillPoly(mask, [np.round(points * 4).astype(np.int32)], 255, shift=2)  # type: ignore[call-overload]
    return mask


def _soft(mask: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) uint8 mask -> (H, W, 1) float alpha, its edge blurred by sigma pixels."""
    return cv2.GaussianBlur(mask, (0, 0), sigma).astype(np.float32)[..., None] / 255


def pose_face(image: np.ndarray, face: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(H, W, 3) the photo warped so its (68, 2) landmarks face go to target, the lips
    from their visible edge and the inside of the mouth filled: the photo's teeth
    where they were, dark below them, and a dark seam between lips that touch."""
    warped = warp_face(image, _lip_source(face), target).astype(np.float32)
    mouth = _polygon(image.shape, target[INNER_MOUTH])  # the target's opening
    inside = cv2.erode(mouth, np.ones((3, 3), np.uint8))  # what shows through it
    seam = mouth.copy()
    outline = np.round(target[INNER_MOUTH] * 4).astype(np.int32)
    # cv2's stubs want a sequence for the colour; a number is the documented Scalar(n)
    cv2.polylines(seam, [outline], True, 255, 1, cv2.LINE_AA, shift=2)  # type: ignore[call-overload]
    photo_teeth = _polygon(image.shape, face[INNER_MOUTH])  # what the photo shows inside
    around = cv2.dilate(photo_teeth, np.ones((5, 5), np.uint8))
    lip_pixels = image[(_polygon(image.shape, face[48:60]) > 0) & (around == 0)]
    lip = lip_pixels.mean(axis=0) if len(lip_pixels) else np.array(MOUTH_DARK, np.float64)
    if photo_teeth.any():  # teeth the warp carried onto the lips take the lips' colour
        seen = image[photo_teeth > 0].astype(np.float64)
        brightness = seen.sum(axis=1)
        tooth = seen[brightness >= np.percentile(brightness, 70)].mean(axis=0) - lip
        share = np.clip((warped - lip) @ tooth / max(float(tooth @ tooth), 1.0), 0, 1)
        on_lips = (_polygon(image.shape, target[48:60]) > 0) & (inside == 0)
        warped -= (share * on_lips)[..., None] * tooth
    teeth = photo_teeth & inside
    out = warped * (1 - (a := 0.7 * _soft(seam, 0.6))) + 0.6 * lip * a
    out = out * (1 - (a := _soft(inside & ~teeth, 1.0))) + np.array(MOUTH_DARK) * a
    out = out * (1 - (a := _soft(teeth, 0.8))) + image * a
    return np.clip(out, 0, 255).astype(np.uint8)


def _head_motion(face: np.ndarray, phase: float, width: int, height: int) -> np.ndarray:
    """A similarity transform (2, 3) for loop phase 0..1: sway, nod and breathing zoom."""
    centre = face[list(range(JAW.start, JAW.stop))].mean(axis=0)
    angle = 1.5 * np.sin(2 * np.pi * phase)  # degrees of roll
    scale = 1.0 + 0.012 * (1 - np.cos(2 * np.pi * phase)) / 2
    matrix: np.ndarray = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, scale)
    matrix[:, 2] += [
        0.006 * width * np.sin(2 * np.pi * phase),
        0.004 * height * np.sin(4 * np.pi * phase),
    ]
    return matrix


def idle_loop(image: np.ndarray, face: np.ndarray, frames: int = 100) -> np.ndarray:
    """(H, W, 3) photo and its (68, 2) landmarks -> (frames, H, W, 3) idle loop of the
    face at rest (rest_face).

    The loop is played forward then backward, so one forward pass is half a period of
    the head motion; blinks at 30 % and 75 % of it.
    """
    height, width = image.shape[:2]
    closures = np.zeros(frames)
    profile = np.array([0.35, 0.8, 1.0, 0.7, 0.3])
    for centre in (int(frames * 0.3), int(frames * 0.75)):
        start = max(0, min(centre - 2, frames - len(profile)))
        closures[start : start + len(profile)] = profile[: frames - start]
    rest = rest_face(face)
    out = []
    for i in range(frames):
        warped = pose_face(image, face, blink(rest, closures[i]))
        matrix = _head_motion(face, 0.5 * i / max(frames - 1, 1), width, height)
        out.append(
            cv2.warpAffine(
                warped,
                matrix,
                (width, height),
                flags=cv2.INTER_CUBIC,
                borderMode=cv2.BORDER_REFLECT,
            )
        )
    return np.stack(out)


def motion_frames(image: np.ndarray, face: np.ndarray, count: int = 64) -> np.ndarray:
    """(count, H, W, 3) training frames, with small head motion so the generator does not
    learn one fixed position. The first half opens the mouth from rest to 1 and back
    twice, spread on the first opening and rounded on the second; the second half shows
    expressions (``express`` amounts drawn uniformly in [-1, 1], seeded, so a build is
    reproducible) with any opening and spread, so they teach mouths too."""
    height, width = image.shape[:2]
    rest = rest_face(face)
    rng = np.random.default_rng(count)
    speech = count // 2
    out = []
    for i in range(count):
        if i < speech:
            phase = (i + 0.5) / speech
            amount = abs(np.sin(2 * np.pi * phase))
            spread = np.sign(0.5 - phase) * np.sin(np.pi * phase)
            target = open_mouth(rest, amount, spread)
        else:
            brows = rng.uniform(-1, 1, 2)
            eyes, corners = rng.uniform(-1, 1, 2)
            shaped = express(rest, brows[0], brows[1], eyes, corners)
            target = open_mouth(shaped, rng.uniform(0, 1), rng.uniform(-1, 1))
        frame = pose_face(image, face, target)
        matrix = _head_motion(face, i / count, width, height)
        out.append(
            cv2.warpAffine(
                frame, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
            )
        )
    return np.stack(out)

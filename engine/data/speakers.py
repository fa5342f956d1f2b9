"""Who speaks in a talking clip, and which clips the landmark stage may learn from.

The clips in ../shared/data/talking and talking2 come from public repositories; their
names say the source but rarely the person. Clips are grouped so that no person can sit
in both training and validation: where a source names its speakers (MEAD's identities,
VidTIMIT's fadg0, the SadTalker / V-Express HDTF names) the group is that speaker; where
it does not (GRID, LRS2, LRS3, LRW, VoxCeleb2 crops), every clip of that source is one
group. Any other clip is its own speaker (the file stem).

Held-out groups are never trained on: they are what `evp eval lipsync` reports. They were
chosen to span the sources (broadcast, TED, interview crops, MEAD's emotional studio
speech, HDTF addresses) and to hold about a quarter of the speech.
"""

import re

_RULES: tuple[tuple[str, str], ...] = (
    (r"^text2video_VidTIMIT_(?P<who>[a-z]+\d)_", "vidtimit-{who}"),
    (r"^(?:spectre_MEAD|eamm)_(?P<who>[MW]\d{3})_", "mead-{who}"),
    (r"^lipnet_", "grid"),
    (r"^deep_avsr_", "lrs2"),
    (r"^spectre_LRS3_", "lrs3"),
    (r"^pcavs_", "voxceleb2"),
    (r"^lipreadingdeeplearning_sample\d", "lrw"),
    (r"^videoretalking_face_", "videoretalking"),
    (r"^(?:sadtalker|vexpress)_(?:RD|WDA|WRA)_(?P<who>[A-Za-z]+?\d*)_", "hdtf-{who}"),
)

#: Groups never trained on: the validation (held-out) speakers.
HELDOUT_GROUPS = frozenset(
    {
        "lrs3",
        "lrs2",
        "mead-M003",
        "mead-W009",  # the expression reference (evp eval expression): no speech clips
        "hdtf-BobMenendez",
        "hdtf-KatieHill",
        "hdtf-Radio10",
        "videoretalking",
        "lia_driving2",
    }
)


def speaker_group(stem: str) -> str:
    """The speaker (or, where a source does not say, the source) of a clip's file stem."""
    for pattern, template in _RULES:
        match = re.match(pattern, stem)
        if match:
            return template.format(**match.groupdict())
    return stem


def split_of(stem: str) -> str:
    """ "val" for held-out speakers, else "train"."""
    return "val" if speaker_group(stem) in HELDOUT_GROUPS else "train"

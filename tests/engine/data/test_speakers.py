"""Speaker groups keep every person on one side of the train / held-out split."""

from engine.data.speakers import HELDOUT_GROUPS, speaker_group, split_of


def test_sources_that_name_their_speakers_group_by_speaker():
    assert speaker_group("spectre_MEAD_M030_level_3_angry_016") == "mead-M030"
    assert speaker_group("eamm_M030_sad_3_001") == "mead-M030"  # same person, two repos
    assert speaker_group("text2video_VidTIMIT_fadg0_sx19") == "vidtimit-fadg0"
    assert speaker_group("sadtalker_WDA_EdMarkey0_000") == "hdtf-EdMarkey0"
    assert speaker_group("vexpress_RD_Radio10_0_clip_0") == "hdtf-Radio10"


def test_sources_that_do_not_name_them_are_one_group():
    assert {speaker_group(s) for s in ("lipnet_test_video", "lipnet_evaluation_GRID_bbaf2n")} == {
        "grid"
    }
    assert speaker_group("pcavs_Input_00098") == speaker_group("pcavs_Pose_Source_00067")


def test_unknown_clips_are_their_own_speaker_and_trainable():
    assert speaker_group("my_recording") == "my_recording"
    assert split_of("my_recording") == "train"


def test_held_out_groups_are_validation():
    assert split_of("spectre_LRS3_00002") == "val" and "lrs3" in HELDOUT_GROUPS
    assert split_of("spectre_MEAD_M003_level_1_happy_024") == "val"
    assert split_of("spectre_MEAD_M026_level_3_disgusted_018") == "train"

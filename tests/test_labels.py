import pytest

from ecg_core.core.errors import ConfigError
from ecg_core.core.labels import LEADS, TERRITORIES, get_preset


@pytest.mark.parametrize(
    "folder, expected",
    [
        ("ECG Images of Myocardial Infarction Patients (240x12=2880)", 0),
        ("ECG Images of Patient that have abnormal heartbeat (233x12=2796)", 1),
        ("Normal Person ECG Images (284x12=3408)", 2),
        ("ECG Images of Patient that have History of MI (172x12=2064)", 3),
        ("MI", 0), ("HB", 1), ("Normal", 2), ("PMI", 3),
        ("myocardial_infarction", 0), ("abnormal_heartbeat", 1), ("normal", 2), ("history_of_mi", 3),
        ("History of MI", 3), ("Abnormal Heartbeat", 1),
        ("cats", None), ("", None),
    ],
)
def test_cardiac4_folder_mapping(folder, expected):
    assert get_preset("cardiac-4").class_of(folder) == expected


def test_cardiac4_order_is_the_seeds():
    assert get_preset("cardiac-4").class_names == ["Myocardial Infarction", "Abnormal Heartbeat", "Normal",
                                                   "History of MI"]


def test_arrhythmia6():
    p = get_preset("arrhythmia-6")
    assert p.keys == ["N", "L", "R", "A", "V", "VF"]
    assert p.class_of("VF") == 5 and p.class_of("vfl") == 5 and p.class_of("L") == 1
    assert all(c.description and c.look_for for c in p.classes)


def test_unknown_preset_lists_choices():
    with pytest.raises(ConfigError, match="cardiac-4"):
        get_preset("nope")


def test_info_lookup_and_range():
    p = get_preset("cardiac-4")
    assert p.info("PMI").id == 3 and p.info(2).name == "Normal"
    with pytest.raises(ConfigError, match="out of range"):
        p.info(7)


def test_territories_cover_twelve_leads():
    covered = {lead for leads in TERRITORIES.values() for lead in leads}
    assert covered | {"aVR"} == set(LEADS)

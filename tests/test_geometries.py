"""Input geometry parsing and checks."""

import pytest
from ase import Atoms

from densnet_cli.data.geometries import check_geometry, parse_index, read_geometries
from densnet_cli.errors import InputError


@pytest.mark.parametrize(("text", "expected"), [
    ("5", 5), ("-1", -1), ("0:100", slice(0, 100, None)), ("::10", slice(None, None, 10)),
    (":", slice(None, None, None)), ("2:8:3", slice(2, 8, 3)),
])
def test_parse_index(text, expected):
    assert parse_index(text) == expected


@pytest.mark.parametrize("text", ["a", "1:2:3:4", "::0", "1.5"])
def test_parse_index_rejects_garbage(text):
    with pytest.raises(InputError, match="--index"):
        parse_index(text)


def test_selection_keeps_source_indices(water_frames):
    assert [i for i, _ in read_geometries(water_frames, "1::2")] == [1, 3]
    assert [i for i, _ in read_geometries(water_frames, "-1")] == [3]
    with pytest.raises(InputError, match="out of range"):
        read_geometries(water_frames, "7")
    with pytest.raises(InputError, match="selects no frames"):
        read_geometries(water_frames, "5:9")


def test_overlapping_atoms_are_named():
    atoms = Atoms("CHOH", positions=[[0, 0, 0], [1.1, 0, 0], [3, 0, 0], [3.2, 0.1, 0]])
    with pytest.raises(InputError, match=r"frame 7: atoms 2 \(O\) and 3 \(H\) are 0.224 Å"):
        check_geometry(7, atoms)

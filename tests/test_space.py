import json
import random

import pytest

from attentivenas.space import SearchSpace, SpaceError, SubnetError, bundled_spaces, make_divisible

PAPER_MIN = {"resolution": 192, "width": [16, 16, 24, 32, 64, 112, 192, 216, 1792],
             "depth": [1, 3, 3, 3, 3, 3, 1], "kernel_size": [3] * 7, "expand_ratio": [1, 4, 4, 4, 4, 6, 6]}


@pytest.fixture(scope="module")
def paper():
    return SearchSpace.load("attentivenas")


def test_bundled_spaces_load():
    assert {"attentivenas", "fmnist", "cifar10"} <= set(bundled_spaces())
    for name in bundled_spaces():
        assert SearchSpace.load(name).name == name


def test_paper_space_matches_the_spec(paper):
    assert paper.resolutions == (192, 224, 256, 288)
    assert [s.name for s in paper.stages] == [f"mb{i}" for i in range(1, 8)]
    assert paper.stages[4].depths == (3, 4, 5, 6, 7, 8)
    assert paper.stages[5].widths == (192, 200, 208, 216)
    assert [s.se for s in paper.stages] == [False, False, True, False, True, True, True]
    assert [s.stride for s in paper.stages] == [1, 2, 2, 2, 1, 2, 1]
    assert paper.head_widths == (1792, 1984)
    assert paper.encoding_length == 31
    assert 4.3e11 < paper.num_subnets() < 4.5e11


def test_min_and_max_subnets(paper):
    assert paper.min_subnet().to_dict() == PAPER_MIN
    largest = paper.max_subnet()
    assert largest.resolution == 288 and largest.depth == (2, 5, 6, 6, 8, 8, 2)


def test_load_from_yaml_path(tmp_path, paper):
    path = tmp_path / "copy.yaml"
    path.write_text(json.dumps(paper.to_dict()))
    assert SearchSpace.load(path).genes == paper.genes


def test_unknown_space_names_the_choices():
    with pytest.raises(SpaceError, match="attentivenas, cifar10, fmnist"):
        SearchSpace.load("no-such-space")


def test_malformed_space_names_the_missing_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nnum_classes: 10\n")
    with pytest.raises(SpaceError, match="missing key 'resolutions'"):
        SearchSpace.load(path)


@pytest.mark.parametrize("field,index,value,allowed", [
    ("width", 3, 33, "32, 40"),
    ("resolution", None, 200, "192, 224, 256, 288"),
    ("expand_ratio", 0, 4, "1"),
])
def test_subnet_outside_space_names_field_value_and_choices(paper, field, index, value, allowed):
    data = json.loads(json.dumps(PAPER_MIN))
    if index is None:
        data[field] = value
    else:
        data[field][index] = value
    with pytest.raises(SubnetError) as err:
        paper.validate(data)
    assert field in str(err.value) and str(value) in str(err.value) and allowed in str(err.value)


def test_subnet_with_wrong_length_or_missing_field(paper):
    with pytest.raises(SubnetError, match="'depth' must be a list of 7"):
        paper.validate({**PAPER_MIN, "depth": [1, 3]})
    with pytest.raises(SubnetError, match="missing field"):
        paper.validate({"resolution": 192})


def test_extra_keys_are_ignored_and_json_roundtrips(paper, tmp_path):
    subnet = paper.validate({**PAPER_MIN, "flops": 203.4, "name": "a0"})
    path = tmp_path / "a0.json"
    path.write_text(subnet.to_json())
    assert paper.load_subnet(path) == subnet


def test_encoding_roundtrip_and_order(paper):
    rng = random.Random(1)
    for _ in range(50):
        subnet = paper.sample_uniform(rng)
        vector = paper.encode(subnet)
        assert len(vector) == 31 and vector[0] == subnet.resolution
        assert vector[1:10] == list(subnet.width)
        assert paper.decode(vector) == subnet


def test_uniform_sampling_is_seeded_and_covers_choices(paper):
    draws = [paper.sample_uniform(random.Random(7)) for _ in range(2)]
    assert draws[0] == draws[1]
    rng = random.Random(0)
    seen = {gene.label: set() for gene in paper.genes}
    for _ in range(400):
        for gene, value in zip(paper.genes, paper.to_genes(paper.sample_uniform(rng)), strict=True):
            seen[gene.label].add(value)
    for gene in paper.genes:
        assert seen[gene.label] == set(gene.choices)


def test_mutation_and_crossover_stay_in_space(paper):
    rng = random.Random(3)
    a, b = paper.min_subnet(), paper.max_subnet()
    assert paper.mutate(a, rng, 0.0) == a
    for _ in range(20):
        mutated = paper.to_genes(paper.mutate(a, rng, 1.0))
        for gene, old, new in zip(paper.genes, paper.to_genes(a), mutated, strict=True):
            assert new != old or len(gene.choices) == 1, gene.label
    for _ in range(50):
        child = paper.crossover(a, b, rng)
        paper.validate(child)
        for x, lo, hi in zip(paper.to_genes(child), paper.to_genes(a), paper.to_genes(b), strict=True):
            assert x in (lo, hi)


def test_make_divisible():
    assert make_divisible(16 * 4) == 64
    assert make_divisible(3) == 8
    assert make_divisible(100) == 104
    assert make_divisible(91) == 88
    assert make_divisible(9) == 16

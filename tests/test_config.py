"""params.yaml → typed config: profiles, overrides, and errors that name the key."""

import re
from pathlib import Path

import pytest
import yaml

from wsss.config import deep_merge, load_config, parse_override, read_params, resolve
from wsss.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"


def raw_params() -> dict:
    return read_params(PARAMS)


def test_smoke_profile_overrides_paper_settings():
    smoke = resolve(raw_params())
    paper = resolve(raw_params(), ["profile=paper"])
    assert smoke.profile == "smoke" and paper.profile == "paper"
    assert smoke.voc.root == "data/synth/voc" and paper.voc.root == "data/raw/VOCdevkit/VOC2012"
    assert smoke.train_cls.backbone == "tiny" and paper.train_cls.backbone == "resnet38d"
    # keys the smoke profile leaves alone keep the published value
    assert smoke.train_cls.weight_decay == paper.train_cls.weight_decay == 0.0005
    assert smoke.voc_dataset == "synthetic-voc" and paper.voc_dataset == "voc2012"
    assert smoke.sod_dataset == "synthetic-sod" and paper.sod_dataset == "duts"


def test_lite_profile_runs_pretrained_lite0_everywhere_and_one_key_swaps_in_the_synthetic_voc():
    lite = resolve(raw_params(), ["profile=lite"])
    for section in (lite.train_cls, lite.train_seg, lite.ldf):
        assert (section.backbone, section.weights) == ("efficientnet_lite0", "imagenet")
    assert lite.train_cls.output_stride == lite.train_seg.output_stride == 16
    assert lite.voc.root == "data/raw/VOCdevkit/VOC2012" and lite.voc.sbd_root == "data/raw/benchmark_RELEASE/dataset"
    assert lite.voc_dataset == "voc2012"
    assert (lite.sod.root, lite.sod.train_sets, lite.sod.test_sets) == ("data/raw/SOD", ("SOD",), ("SOD",))
    assert lite.sod_dataset == "sod"
    synthetic = resolve(raw_params(), ["profile=lite", "voc.source=synthetic"])
    assert (synthetic.voc.root, synthetic.voc.sbd_root, synthetic.voc_dataset) == ("data/synth/voc", "", "synthetic-voc")
    assert synthetic.train_cls == lite.train_cls  # only the data changes
    assert resolve(raw_params()).voc.source == "synthetic"  # the smoke profile's data
    seam = resolve(raw_params(), ["profile=lite", "method=seam"])
    assert seam.network == "seam" and seam.train_cls.output_stride == 16


def test_paper_profile_carries_published_settings():
    paper = resolve(raw_params(), ["profile=paper"])
    assert paper.infer_cam.scales == (0.5, 1.0, 1.5, 2.0)
    assert (paper.crf.alpha_low, paper.crf.alpha_high, paper.crf.iterations) == (4.0, 24.0, 10)
    assert (paper.crf.bilateral_sxy, paper.crf.bilateral_srgb, paper.crf.bilateral_compat) == (80.0, 13.0, 10.0)
    assert paper.train_cls.crop == 448 and paper.train_cls.poly_power == 0.9
    assert paper.seam.rescale == 0.3 and paper.seam.ohem_ratio == 0.2
    assert paper.ldf.train_sizes == (224, 256, 288, 320, 352) and paper.ldf.epochs == 48
    assert paper.evaluate.bg_sweep == (0.0, 0.6, 0.01)
    assert paper.train_cls.output_stride == paper.train_seg.output_stride == 8


def test_set_overrides_win_over_the_profile():
    cfg = resolve(raw_params(), ["train_cls.crop=64", "train_cls.color_jitter=[0, 0, 0, 0]"])
    assert cfg.train_cls.crop == 64
    assert cfg.train_cls.color_jitter == (0.0, 0.0, 0.0, 0.0)


def test_override_values_are_yaml():
    assert parse_override("a.b=0.5") == {"a": {"b": 0.5}}
    assert parse_override("flag=true") == {"flag": True}
    assert parse_override("x=[1, 2]") == {"x": [1, 2]}
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_override("novalue")


@pytest.mark.parametrize(
    "override, message",
    [
        ("train_cls.lrr=0.1", r"train_cls\.lrr: unknown key"),
        ("bogus=1", r"bogus: unknown key"),
        ("train_cls.batch=eight", r"train_cls\.batch: expected an integer"),
        ("train_cls.batch=true", r"train_cls\.batch: expected an integer"),
        ("train_cls.lr=-1", r"train_cls\.lr must be > 0"),
        ("infer_cam.norm=mean", r"infer_cam\.norm: must be one of max, minmax"),
        ("train_cls.resize_long=[1, 2, 3]", r"train_cls\.resize_long: expected a list of 2 values"),
        ("evaluate.bg_threshold=1.5", r"evaluate\.bg_threshold must be in \[0, 1\]"),
        ("profile=huge", r"profile must be one of smoke, lite, paper"),
        ("synth_voc.train=0", r"synth_voc\.train"),
        ("train_seg.aspp_rates=[6, 0]", r"train_seg\.aspp_rates must be dilations >= 1"),
        ("train_cls.output_stride=32", r"train_cls\.output_stride must be 8 or 16"),
        ("voc.source=sbd", r"voc\.source: must be one of voc2012, synthetic"),
        ("train_seg.backbone=efficientnet_b0", r"train_seg\.backbone: must be one of .*efficientnet_lite0"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        resolve(raw_params(), [override])


def test_missing_key_is_named(tmp_path):
    data = raw_params()
    del data["crf"]["iterations"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"params\.yaml: crf\.iterations: missing key"):
        load_config(path)


def test_unreadable_params_file_is_named(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("profile: [smoke\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")


def test_the_profiles_are_the_keys_of_the_profiles_section():
    data = raw_params()
    data["profiles"]["fast"] = {"train_cls": {"epochs": 1}}
    fast = resolve(data, ["profile=fast"])
    assert (fast.profile, fast.train_cls.epochs) == ("fast", 1)
    with pytest.raises(ConfigError, match="profile must be one of smoke, lite, paper, fast, got 'huge'"):
        resolve(data, ["profile=huge"])


def test_a_method_entry_picks_the_network_and_overrides_sections():
    cam, seam, er = (resolve(raw_params(), [f"method={name}"]) for name in ("cam", "seam", "seam_er"))
    assert (cam.network, cam.infer_cam.source, cam.infer_cam.norm) == ("cam", "cam", "max")
    assert (seam.network, seam.infer_cam.source, seam.infer_cam.norm) == ("seam", "pcm", "minmax")
    assert seam.seam.rescale == 0.5 and resolve(raw_params(), ["method=seam", "profile=paper"]).seam.rescale == 0.3
    assert (er.network, er.seam.ecr_weight, er.seam.min_pool_loss, er.infer_cam.source) == ("seam", 0.0, False, "cam")
    assert resolve(raw_params(), ["method=seam_er", "seam.ecr_weight=0.5"]).seam.ecr_weight == 0.5  # --set comes last
    assert [row.method for row in seam.seam_ablation] == ["cam", "seam_er", "seam_er_pcm", "seam_ecr", "seam", "seam"]


def test_every_method_on_seams_network_resizes_each_views_maps_to_the_view_first():
    """SEAM's network returns its maps at its input's size (YudeWang/SEAM@3212261:network/resnet38_SEAM.py:48-49),
    which infer_SEAM.py:61 then resizes to the image: the two resizes of ``upsample: view_first``. The one resize of
    ``direct`` (psa) gave CAMs up to 0.36 apart from the official ones on the same weights (benchmarks/parity.py)."""
    data = raw_params()
    for name in data["methods"]:
        for profile in ("paper", "smoke"):
            resolved = resolve(data, [f"method={name}", f"profile={profile}"])
            assert resolved.infer_cam.upsample == ("view_first" if resolved.network == "seam" else "direct"), name


def test_each_method_trains_with_its_papers_settings_which_the_profile_scales():
    """SEAM (YudeWang/SEAM@3212261:train_SEAM.py:35-47, 62) trains at lr 0.01, batch 8, 8 epochs, resize 448-768; psa's CAM at 0.1, 16, 15,
    256-512. The smoke profile's keys win over a method's, so every method trains alike there."""
    paper = {name: resolve(raw_params(), [f"method={name}", "profile=paper"]).train_cls for name in ("cam", "seam", "seam_ecr")}
    assert (paper["cam"].lr, paper["cam"].batch, paper["cam"].epochs, paper["cam"].resize_long) == (0.1, 16, 15, (256, 512))
    for name in ("seam", "seam_ecr"):
        assert (paper[name].lr, paper[name].batch, paper[name].epochs, paper[name].resize_long) == (0.01, 8, 8, (448, 768))
    smoke = [resolve(raw_params(), [f"method={name}"]).train_cls for name in ("cam", "seam", "seam_ecr")]
    assert all(settings == smoke[0] for settings in smoke)
    assert resolve(raw_params(), ["method=seam", "train_cls.lr=0.02"]).train_cls.lr == 0.02  # --set comes last


@pytest.mark.parametrize("overrides, message", [
    (["method=irn"], "method: unknown method 'irn' (known: cam, seam"),
    (["method=cam", "infer_cam.source=pcm"], "infer_cam.source pcm needs network seam"),
    (["methods.cam.network=vgg"], "network: must be one of cam, seam"),
    (["seam.rescale=1.0"], "seam.rescale must be in (0, 4] and not 1 unless flip is on"),
    (["seam.ohem_ratio=0"], "seam.ohem_ratio must be in (0, 1]"),
    (["seam.er_weight=-1"], "seam.er_weight must be >= 0"),
    (["seam.detach=true"], "seam.detach: unknown key"),
    (["seam.pcm_classes=none"], "seam.pcm_classes: must be one of all, present"),
    (["seam_ablation=[{row: x, method: nope, crf: false, paper: 1.0}]"], "seam_ablation: unknown method 'nope'"),
])
def test_bad_method_settings_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve(raw_params(), overrides)


def test_nested_snakemake_config_values_keep_the_types_of_params_yaml():
    """Snakemake reads `--config ldf={epochs: 6}` with YAML's BaseLoader (every scalar a string); the
    workflow gives each value the type params.yaml gives its key, and keeps strings where it has strings.
    A key that --config names wins over the profile even where it equals the file's value (ldf.two_stage)."""
    from snakemake.cli import parse_config

    from wsss.workflow import workflow_config

    cli = parse_config(["ldf={epochs: 6, lr: 0.01, two_stage: true}", "train_seg={aspp_rates: [1, 2, 3, 4]}",
                        "train_cls={weights: '123'}", "method=seam"])
    assert cli["ldf"]["epochs"] == "6"  # what Snakemake hands over
    cfg, overrides = workflow_config(deep_merge(read_params(PARAMS), cli), PARAMS, command_line=cli)
    assert (cfg.ldf.epochs, cfg.ldf.lr, cfg.ldf.two_stage) == (6, 0.01, True)
    assert cfg.train_seg.aspp_rates == (1, 2, 3, 4)
    assert cfg.train_cls.weights == "123" and cfg.method == "seam"
    assert "ldf.epochs=6" in overrides and "train_cls.weights='123'" in overrides


def test_a_method_added_on_the_snakemake_command_line_is_a_method():
    from snakemake.cli import parse_config

    from wsss.workflow import method_workflow_configs

    cli = parse_config(["methods={seam_flip: {network: seam, seam: {flip: true, er_weight: 2}}}"])
    methods = method_workflow_configs(deep_merge(read_params(PARAMS), cli), PARAMS, command_line=cli)
    cfg, flags = methods["seam_flip"]
    assert (cfg.network, cfg.seam.flip, cfg.seam.er_weight) == ("seam", True, 2.0)
    assert "method=seam_flip" in flags


def test_a_snakemake_config_value_that_is_no_yaml_is_named_by_its_key():
    from wsss.workflow import workflow_config

    cli = {"train_seg": {"aspp_rates": "[1,"}}
    with pytest.raises(ConfigError, match="train_seg.aspp_rates"):
        workflow_config(deep_merge(read_params(PARAMS), cli), PARAMS, command_line=cli)


SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.json"


def test_the_committed_json_schema_is_the_models_schema():
    """workflow/schemas/config.schema.json is written by `wsss config --schema > workflow/schemas/config.schema.json`."""
    import json

    from wsss.config import params_schema

    assert json.loads(SCHEMA.read_text()) == params_schema()


@pytest.mark.parametrize("change, message", [
    (None, None),
    ({"train_cls": {"batch": "eight"}}, "'eight' is not of type 'integer'"),
    ({"train_cls": {"batch": True}}, "True is not of type 'integer'"),
    ({"train_cls": {"lrr": 0.1}}, "'lrr' was unexpected"),
    ({"profiles": {"lite": {"ldf": {"epochs": 2.5}}}}, "2.5 is not of type 'integer'"),
    ({"profiles": {"fast": {"seam": {"detach": True}}}}, "'detach' was unexpected"),
    ({"methods": {"seam_flip": {"seam": {"flip": True}}}}, "'network' is a required property"),
    ({"synth_voc": {"size": 16}}, "16 is less than the minimum of 32"),
])
def test_snakemake_validates_params_yaml_against_the_schema(change, message):
    """The Snakefile's `validate(config, ...)`: params.yaml passes, partial profile and method entries
    included; a wrong type or an unknown key anywhere fails."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    data = deep_merge(raw_params(), change or {})
    if message is None:
        validate(data, str(SCHEMA), set_default=False)
        return
    with pytest.raises(WorkflowError, match=re.escape(message)):
        validate(data, str(SCHEMA), set_default=False)

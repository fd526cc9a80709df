# The whole DAG. `snakemake --cores 2` builds `rule all`; `dvc.yaml` is generated from this file
# (`wsss dag dvc`). Configuration: params.yaml, validated against workflow/schemas/config.schema.json
# (the JSON Schema of wsss.config's models: `wsss config --schema`) and by wsss.config (unknown keys,
# wrong types and out-of-range values stop the run with the offending key named).
import os
import uuid

from snakemake.utils import min_version, validate

from wsss.config import round_method
from wsss.nets.registry import NETWORKS
from wsss.workflow import SELECTORS, method_workflow_configs, rule_params, shell_overrides, typed_config, workflow_config

min_version("9.0")


configfile: "params.yaml"
validate(typed_config(config), "workflow/schemas/config.schema.json")


COMMAND_LINE = workflow.config_settings.overwrite_config  # the --config entries alone
CFG, OVERRIDES = workflow_config(config, command_line=COMMAND_LINE)
SET = shell_overrides([item for item in OVERRIDES if item.split("=", 1)[0] not in SELECTORS])  # method rules add theirs
THREADS = CFG.runtime.threads   # of every job; the WSSS rules' priority starts its chain, the longest, first
METHODS = method_workflow_configs(config, command_line=COMMAND_LINE)  # name -> (its Config, its --set flags)
os.environ.setdefault("WSSS_PIPELINE_ID", uuid.uuid4().hex)


include: "workflow/rules/data.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/wsss.smk"
include: "workflow/rules/sccam.smk"
include: "workflow/rules/sod.smk"


rule all:
    default_target: True
    input:
        "results/voc_miou.json",
        "results/sod_metrics.json",
        f"results/{CFG.sod_dataset}/ldf_ablation.json",

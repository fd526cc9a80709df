# Datasets: the synthetic stand-ins (smoke profile) and the prepare stages that validate a dataset
# and write the split lists and image-level labels every later stage reads.
from wsss.data.sod import sod_help
from wsss.data.voc import voc_help


def dataset_source(root, synthetic_output, download, help_text):
    """The dataset folder a prepare rule reads: the synthetic set, a user's copy, or nothing (download)."""
    if root == synthetic_output or os.path.isdir(root):
        return [root]
    if download:
        return []
    raise WorkflowError(help_text)


def voc_source(wildcards):
    return dataset_source(CFG.voc.root, rules.synth_voc.output[0], CFG.voc.download, voc_help(CFG.voc.root))


def sod_source(wildcards):
    return dataset_source(CFG.sod.root, rules.synth_sod.output[0], CFG.sod.download,
                          sod_help(CFG.sod.root, CFG.sod.train_sets + CFG.sod.test_sets))


rule synth_voc:
    output:
        directory("data/synth/voc"),
    params:
        cfg=rule_params(CFG, "synth_voc"),
    threads: THREADS
    log:
        "logs/synth_voc.log",
    benchmark:
        "logs/benchmark/synth_voc.tsv"
    shell:
        "wsss data synth-voc --out {output} --workers {threads} {SET} > {log} 2>&1"


rule synth_sod:
    output:
        directory("data/synth/sod"),
    params:
        cfg=rule_params(CFG, "synth_sod"),
    threads: THREADS
    log:
        "logs/synth_sod.log",
    benchmark:
        "logs/benchmark/synth_sod.tsv"
    shell:
        "wsss data synth-sod --out {output} --workers {threads} {SET} > {log} 2>&1"


rule prepare_voc:
    input:
        voc_source,
    output:
        directory("data/prepared/voc"),
    params:
        cfg=rule_params(CFG, "prepare_voc"),
    threads: THREADS
    log:
        "logs/prepare_voc.log",
    benchmark:
        "logs/benchmark/prepare_voc.tsv"
    shell:
        "wsss data prepare-voc --out {output} --workers {threads} {SET} > {log} 2>&1"


rule prepare_sod:
    input:
        sod_source,
    output:
        directory("data/prepared/sod"),
    params:
        cfg=rule_params(CFG, "prepare_sod"),
    threads: THREADS
    log:
        "logs/prepare_sod.log",
    benchmark:
        "logs/benchmark/prepare_sod.tsv"
    shell:
        "wsss data prepare-sod --out {output} --workers {threads} {SET} > {log} 2>&1"

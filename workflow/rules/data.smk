# Datasets: the synthetic stand-ins (smoke profile) and the prepare stages that validate a dataset
# and write the split lists and image-level labels every later stage reads.


def voc_source(wildcards):
    """The VOC2012 root prepare_voc reads: the synthetic set, a user's copy, or nothing (download)."""
    root = CFG.voc.root
    if root == rules.synth_voc.output[0] or os.path.isdir(root) or not CFG.voc.download:
        return [root]
    return []


def sod_source(wildcards):
    root = CFG.sod.root
    if root == rules.synth_sod.output[0] or os.path.isdir(root) or not CFG.sod.download:
        return [root]
    return []


rule synth_voc:
    output:
        directory("data/synth/voc"),
    params:
        cfg=rule_params(CFG, "synth_voc"),
    threads: 2
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
    threads: 2
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
    threads: 2
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
    threads: 2
    log:
        "logs/prepare_sod.log",
    benchmark:
        "logs/benchmark/prepare_sod.tsv"
    shell:
        "wsss data prepare-sod --out {output} --workers {threads} {SET} > {log} 2>&1"

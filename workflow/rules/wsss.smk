# The WSSS chain: classifier -> CAMs -> pseudo labels -> DeepLab -> results/voc_miou.json. The pseudo labels
# (`pseudo` in params.yaml): crf, the dense CRF of the CAMs; rw, AffinityNet's random walk on the CAMs (AffinityNet
# trained on the low/high-alpha CRF labels, aff_labels -> train_aff -> infer_rw); rw_crf, the walk then the CRF.
# Every rule runs per method (`{method}`: a name under `methods` in params.yaml), with that method's
# configuration (METHODS), so methods and ablation variants sit side by side; results/voc_miou.json
# summarises the method `method` picks.

METHOD = CFG.method
RESULTS = f"results/{CFG.voc_dataset}"


wildcard_constraints:
    method="|".join(METHODS),


def method_params(rule):
    """The rule's resolved config keys for the job's method (Snakemake's params trigger)."""
    return lambda wildcards: rule_params(METHODS[wildcards.method][0], rule)


def method_set(wildcards):
    return METHODS[wildcards.method][1]


def round_labels(wildcards):
    """The sub-category labels of the round a method folder trains, for a network trained in rounds (SC-CAM)."""
    cfg = METHODS[wildcards.method][0]
    if not NETWORKS[cfg.network].rounds:
        return []
    return f"data/sccam/{cfg.method}/round{cfg.sccam.training_round}/labels.npz"


rule train_cls:
    input:
        voc="data/prepared/voc",
        labels=round_labels,
    output:
        "models/{method}/classifier/model.pt",
    params:
        cfg=method_params("train_cls"),
        set=method_set,
        labels=lambda wildcards, input: f" --labels {input.labels}" if input.labels else "",
    threads: THREADS
    priority: 1   # the WSSS chain, the DAG's longest, before the SOD chain's jobs
    resources:
        gpu=1,
    log:
        "logs/{method}/train_cls.log",
    benchmark:
        "logs/benchmark/{method}/train_cls.tsv"
    shell:
        "wsss --processes {resources.gpu} train-cls --voc {input.voc}{params.labels} --out {output} {params.set} > {log} 2>&1"


rule infer_cam:
    input:
        voc="data/prepared/voc",
        model=rules.train_cls.output[0],
    output:
        directory("data/cams/{method}/train_aug"),
    params:
        cfg=method_params("infer_cam"),
        set=method_set,
    threads: THREADS
    priority: 1   # the WSSS chain, the DAG's longest, before the SOD chain's jobs
    resources:
        gpu=1,
    log:
        "logs/{method}/infer_cam.log",
    benchmark:
        "logs/benchmark/{method}/infer_cam.tsv"
    shell:
        "wsss infer-cam --voc {input.voc} --model {input.model} --split train_aug --out {output}"
        " --workers 1 {params.set} > {log} 2>&1"


rule eval_equivariance:
    input:
        voc="data/prepared/voc",
        model=rules.train_cls.output[0],
    output:
        f"{RESULTS}/{{method}}/equivariance.json",
    params:
        cfg=method_params("eval_equivariance"),
        set=method_set,
    threads: THREADS
    log:
        "logs/{method}/eval_equivariance.log",
    benchmark:
        "logs/benchmark/{method}/eval_equivariance.tsv"
    shell:
        "wsss eval-equivariance --voc {input.voc} --model {input.model} --split train --out {output}"
        " {params.set} > {log} 2>&1"


rule crf:
    input:
        voc="data/prepared/voc",
        cams=rules.infer_cam.output[0],
    output:
        directory("data/pseudo/{method}/train_aug"),
    params:
        cfg=method_params("crf"),
        set=method_set,
    threads: THREADS
    priority: 1   # the WSSS chain, the DAG's longest, before the SOD chain's jobs
    log:
        "logs/{method}/crf.log",
    benchmark:
        "logs/benchmark/{method}/crf.tsv"
    shell:
        "wsss crf --voc {input.voc} --cams {input.cams} --split train_aug --out {output}"
        " --workers {threads} {params.set} > {log} 2>&1"


rule aff_labels:
    input:
        voc="data/prepared/voc",
        cams=rules.infer_cam.output[0],
    output:
        directory("data/aff_labels/{method}/train_aug"),
    params:
        cfg=method_params("aff_labels"),
        set=method_set,
    threads: THREADS
    priority: 1   # the WSSS chain, the DAG's longest, before the SOD chain's jobs
    log:
        "logs/{method}/aff_labels.log",
    benchmark:
        "logs/benchmark/{method}/aff_labels.tsv"
    shell:
        "wsss aff-labels --voc {input.voc} --cams {input.cams} --split train_aug --out {output}"
        " --workers {threads} {params.set} > {log} 2>&1"


def classifier_of(section):
    """The method's trained classifier when the network of ``section`` starts from it (``weights: classifier``)."""
    def classifier(wildcards):
        if getattr(METHODS[wildcards.method][0], section).weights != "classifier":
            return []
        return rules.train_cls.output[0].format(method=wildcards.method)
    return classifier


def classifier_flag(wildcards, input):
    return f"--classifier {input.classifier}" if input.classifier else ""


rule train_aff:
    input:
        voc="data/prepared/voc",
        labels=rules.aff_labels.output[0],
        classifier=classifier_of("affinity"),
    output:
        "models/{method}/affinity/model.pt",
    params:
        cfg=method_params("train_aff"),
        set=method_set,
        classifier=classifier_flag,
    threads: THREADS
    priority: 1   # the WSSS chain, the DAG's longest, before the SOD chain's jobs
    resources:
        gpu=1,
    log:
        "logs/{method}/train_aff.log",
    benchmark:
        "logs/benchmark/{method}/train_aff.tsv"
    shell:
        "wsss --processes {resources.gpu} train-aff --voc {input.voc} --labels {input.labels} {params.classifier} --out {output} {params.set} > {log} 2>&1"


rule infer_rw:
    input:
        voc="data/prepared/voc",
        model=rules.train_aff.output[0],
        cams=rules.infer_cam.output[0],
    output:
        directory("data/{walk}/{method}/train_aug"),
    wildcard_constraints:
        walk="rw|rw_crf",
    params:
        cfg=method_params("infer_rw"),
        set=method_set,
        crf=lambda wildcards: "--crf" if wildcards.walk == "rw_crf" else "",
    threads: THREADS
    priority: 1   # the WSSS chain, the DAG's longest, before the SOD chain's jobs
    resources:
        gpu=1,
    log:
        "logs/{method}/infer_{walk}.log",
    benchmark:
        "logs/benchmark/{method}/infer_{walk}.tsv"
    shell:
        "wsss infer-rw --voc {input.voc} --model {input.model} --cams {input.cams} --split train_aug --out {output}"
        " {params.crf} --workers {threads} {params.set} > {log} 2>&1"


PSEUDO_LABELS = {"crf": rules.crf.output[0], "rw": "data/rw/{method}/train_aug", "rw_crf": "data/rw_crf/{method}/train_aug"}


def pseudo_labels(wildcards):
    """The pseudo labels DeepLab trains on: those of the method's ``pseudo`` (crf, rw or rw_crf)."""
    return PSEUDO_LABELS[METHODS[wildcards.method][0].pseudo].format(method=wildcards.method)


rule train_seg:
    input:
        voc="data/prepared/voc",
        labels=pseudo_labels,
        classifier=classifier_of("train_seg"),
    output:
        "models/{method}/deeplab/model.pt",
    params:
        cfg=method_params("train_seg"),
        set=method_set,
        classifier=classifier_flag,
    threads: THREADS
    priority: 1   # the WSSS chain, the DAG's longest, before the SOD chain's jobs
    resources:
        gpu=1,
    log:
        "logs/{method}/train_seg.log",
    benchmark:
        "logs/benchmark/{method}/train_seg.tsv"
    shell:
        "wsss --processes {resources.gpu} train-seg --voc {input.voc} --labels {input.labels} {params.classifier} --out {output} {params.set} > {log} 2>&1"


rule infer_seg:
    input:
        voc="data/prepared/voc",
        model=rules.train_seg.output[0],
    output:
        directory("data/predictions/{method}/val"),
    params:
        cfg=method_params("infer_seg"),
        set=method_set,
    threads: THREADS
    priority: 1   # the WSSS chain, the DAG's longest, before the SOD chain's jobs
    resources:
        gpu=1,
    log:
        "logs/{method}/infer_seg.log",
    benchmark:
        "logs/benchmark/{method}/infer_seg.tsv"
    shell:
        "wsss infer-seg --voc {input.voc} --model {input.model} --split val --out {output} {params.set} > {log} 2>&1"


rule eval_seg:
    input:
        voc="data/prepared/voc",
        labels=rules.infer_seg.output[0],
    output:
        scores=f"{RESULTS}/{{method}}/seg_miou.json",
        per_class=report(f"{RESULTS}/{{method}}/seg_iou.png", caption="../report/seg_iou.rst", category="WSSS"),
    params:
        cfg=method_params("eval_seg"),
    threads: THREADS
    priority: 1   # the WSSS chain, the DAG's longest, before the SOD chain's jobs
    log:
        "logs/{method}/eval_seg.log",
    benchmark:
        "logs/benchmark/{method}/eval_seg.tsv"
    shell:
        "wsss evaluate segmentation --pred {input.labels} --gt {VOC_GT} --list {input.voc}/val.txt"
        " --method {wildcards.method} --workers {threads} --out {output.scores} --plot {output.per_class} {SET} > {log} 2>&1"


rule summarize_voc:
    input:
        seg=f"{RESULTS}/{METHOD}/seg_miou.json",
        cam=f"{RESULTS}/{METHOD}/cam_miou.json",
        pseudo=f"{RESULTS}/{METHOD}/{METHODS[METHOD][0].pseudo}_miou.json",
        equivariance=f"{RESULTS}/{METHOD}/equivariance.json",
    output:
        report("results/voc_miou.json", caption="../report/voc_miou.rst", category="WSSS"),
    params:
        cfg=rule_params(METHODS[METHOD][0], "summarize_voc"),
        set=METHODS[METHOD][1],
        pseudo=METHODS[METHOD][0].pseudo,
    log:
        f"logs/{METHOD}/summarize_voc.log",
    benchmark:
        f"logs/benchmark/{METHOD}/summarize_voc.tsv"
    shell:
        "wsss summarize-voc --seg {input.seg} --cam {input.cam} --pseudo {input.pseudo}"
        " --equivariance {input.equivariance} --out {output} {params.set} --set pseudo={params.pseudo} > {log} 2>&1"


def ablation_inputs(wildcards):
    """Each SEAM Table 1 row's score (CAMs, or CRF pseudo labels) and its method's equivariance error."""
    paths = [f"{RESULTS}/{row.method}/{name}.json" for row in CFG.seam_ablation
             for name in ("crf_miou" if row.crf else "cam_miou", "equivariance")]
    return list(dict.fromkeys(paths))


rule seam_ablation:
    input:
        ablation_inputs,
    output:
        json=f"{RESULTS}/seam_ablation.json",
        table=f"{RESULTS}/seam_ablation.md",
    params:
        cfg=rule_params(CFG, "seam_ablation"),
    log:
        "logs/seam_ablation.log",
    benchmark:
        "logs/benchmark/seam_ablation.tsv"
    shell:
        "wsss summarize-ablation --results {RESULTS} --out {output.json} --table {output.table} {SET} > {log} 2>&1"

# SC-CAM's rounds (Chang et al., CVPR'20; Juliachang/SC-CAM@191ec48:script.sh:22-48). Round r of an SC-CAM method
# extracts the
# train_aug features of round r-1's classifier (round 0: the classifier of `sccam.initial_method`), clusters
# them per parent class into `sccam.clusters` sub-categories and trains a new classifier on those labels
# (train_cls, from train_cls.weights). Round r < R of method m is the method folder m_round<r> (models/,
# data/cams/, results/ as any method, so infer_cam and eval_cam score every round); the last round is m itself.


def round_job(wildcards):
    """(configuration, --set flags) of round `wildcards.round` of the SC-CAM method `wildcards.method`."""
    rounds = METHODS[wildcards.method][0].sccam.rounds
    return METHODS[round_method(wildcards.method, int(wildcards.round), rounds)]


def extractor(wildcards):
    """Round r-1's classifier: the initial method's for round 1, else the previous round's."""
    settings, r = METHODS[wildcards.method][0].sccam, int(wildcards.round)
    name = settings.initial_method if r == 1 else round_method(wildcards.method, r - 1, settings.rounds)
    return f"models/{name}/classifier/model.pt"


def extractor_network(wildcards):
    settings = METHODS[wildcards.method][0].sccam
    return METHODS[settings.initial_method if int(wildcards.round) == 1 else wildcards.method][0].network


SCCAM_METHODS = [name for name, (cfg, _) in METHODS.items() if NETWORKS[cfg.network].rounds and not cfg.sccam.round]


rule extract_features:
    wildcard_constraints:
        method="|".join(SCCAM_METHODS),
        round=r"\d+",
    input:
        voc="data/prepared/voc",
        model=extractor,
    output:
        "data/sccam/{method}/round{round}/features.npz",
    params:
        cfg=lambda wildcards: rule_params(round_job(wildcards)[0], "extract_features"),
        set=lambda wildcards: round_job(wildcards)[1],
        network=extractor_network,
    threads: THREADS
    resources:
        gpu=1,
    log:
        "logs/{method}/round{round}/extract_features.log",
    benchmark:
        "logs/benchmark/{method}/round{round}/extract_features.tsv"
    shell:
        "wsss extract-features --voc {input.voc} --model {input.model} --network {params.network}"
        " --split train_aug --out {output} {params.set} > {log} 2>&1"


rule cluster:
    wildcard_constraints:
        method="|".join(SCCAM_METHODS),
        round=r"\d+",
    input:
        voc="data/prepared/voc",
        features=rules.extract_features.output[0],
    output:
        labels="data/sccam/{method}/round{round}/labels.npz",
        plot=report(f"{RESULTS}/{{method}}/clusters_round{{round}}.png", caption="../report/sccam_clusters.rst",
                    category="SC-CAM"),
    params:
        cfg=lambda wildcards: rule_params(round_job(wildcards)[0], "cluster"),
        set=lambda wildcards: round_job(wildcards)[1],
    threads: THREADS
    log:
        "logs/{method}/round{round}/cluster.log",
    benchmark:
        "logs/benchmark/{method}/round{round}/cluster.tsv"
    shell:
        "wsss cluster --voc {input.voc} --features {input.features} --out {output.labels} --plot {output.plot}"
        " --workers {threads} {params.set} > {log} 2>&1"


def sccam_ablation_inputs(wildcards):
    """The CAM scores of every round of `sccam_ablation.method` (round 0: its initial method) and of each K variant."""
    method = CFG.sccam_ablation.method
    settings = METHODS[method][0].sccam
    rounds = [round_method(method, r, settings.rounds) for r in range(1, settings.rounds + 1)]
    folders = [settings.initial_method, *rounds, *CFG.sccam_ablation.clusters]
    return [f"{RESULTS}/{folder}/cam_miou.json" for folder in dict.fromkeys(folders)]


rule sccam_ablation:
    input:
        sccam_ablation_inputs,
    output:
        json=f"{RESULTS}/sccam_ablation.json",
        table=f"{RESULTS}/sccam_ablation.md",
        plot=report(f"{RESULTS}/sccam_ablation.png", caption="../report/sccam_ablation.rst", category="SC-CAM"),
    params:
        cfg=rule_params(CFG, "sccam_ablation"),
    log:
        "logs/sccam_ablation.log",
    benchmark:
        "logs/benchmark/sccam_ablation.tsv"
    shell:
        "wsss summarize-sccam --results {RESULTS} --out {output.json} --table {output.table} --plot {output.plot}"
        " {SET} > {log} 2>&1"

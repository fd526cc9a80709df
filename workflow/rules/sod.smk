# Salient object detection with LDF: decouple the training masks into body/detail maps -> train LDF
# (single stage, or coarse -> predicted maps -> fine with ldf.two_stage) -> saliency maps of every
# test set -> eval_saliency (evaluate.smk) -> results/sod_metrics.json; and the supervision ablation
# (LDF Table 5: body|saliency x detail|edge, each with every seed of ldf_ablation.seeds)
# -> results/<sod dataset>/ldf_ablation.json and .md.
# Training and inference rules take one thread (Snakemake sets OMP_NUM_THREADS): the smoke networks gain little
# from a second one, and two jobs side by side keep both cores busy, also when other work shares them.

from wsss.config import SUPERVISIONS  # the values of ldf.supervision

SOD_RESULTS = f"results/{CFG.sod_dataset}"


wildcard_constraints:
    supervision="|".join(SUPERVISIONS),
    seed=r"\d+",
    ldf_method="ldf(_(" + "|".join(SUPERVISIONS) + r")_seed\d+)?",


def ablation_method(supervision, seed):
    """The saliency-map folder of an ablation row and seed: the main model is the body+detail row of the
    configured seed when it is trained in a single stage, as every ablation row is."""
    if supervision == "body_detail" and not CFG.ldf.two_stage and seed == CFG.seed:
        return "ldf"
    return f"ldf_{supervision}_seed{seed}"


def ablation_rows(wildcards, input):
    """``supervision@seed=results.json`` arguments of summarize-sod --ablation."""
    rows = {name: name.replace("_seed", "@") for name in input.keys()}  # body_detail_seed0 -> body_detail@0
    return " ".join(f"{rows[name]}={path}" for name, paths in input.items() for path in paths)


def ldf_model(wildcards):
    if wildcards.ldf_method == "ldf":
        return rules.train_ldf.output[0]
    supervision, seed = wildcards.ldf_method.removeprefix("ldf_").rsplit("_seed", 1)
    return f"models/ldf_ablation/{supervision}/seed{seed}/model.pt"


rule decouple:
    input:
        sod="data/prepared/sod",
    output:
        directory("data/sod/ldf/decoupled"),
    params:
        cfg=rule_params(CFG, "decouple"),
    threads: THREADS
    log:
        "logs/ldf/decouple.log",
    benchmark:
        "logs/benchmark/ldf/decouple.tsv"
    shell:
        "wsss decouple --sod {input.sod} --out {output} --workers {threads} {SET} > {log} 2>&1"


rule train_ldf_coarse:
    input:
        sod="data/prepared/sod",
        labels=rules.decouple.output[0],
    output:
        "models/ldf/coarse/model.pt",
    params:
        cfg=rule_params(CFG, "train_ldf_coarse"),
    threads: THREADS
    resources:
        gpu=1,
    log:
        "logs/ldf/train_ldf_coarse.log",
    benchmark:
        "logs/benchmark/ldf/train_ldf_coarse.tsv"
    shell:
        "wsss --processes {resources.gpu} train-ldf --sod {input.sod} --labels {input.labels} --out {output} {SET} > {log} 2>&1"


rule relabel_ldf:
    input:
        sod="data/prepared/sod",
        model=rules.train_ldf_coarse.output[0],
    output:
        directory("data/sod/ldf/coarse_maps"),
    params:
        cfg=rule_params(CFG, "relabel_ldf"),
    threads: THREADS
    resources:
        gpu=1,
    log:
        "logs/ldf/relabel_ldf.log",
    benchmark:
        "logs/benchmark/ldf/relabel_ldf.tsv"
    shell:
        "wsss infer-ldf --sod {input.sod} --model {input.model} --maps decoupled --method ldf_coarse"
        " --out {output} {SET} > {log} 2>&1"


rule train_ldf:
    input:
        sod="data/prepared/sod",
        labels=rules.relabel_ldf.output[0] if CFG.ldf.two_stage else rules.decouple.output[0],
    output:
        "models/ldf/model.pt",
    params:
        cfg=rule_params(CFG, "train_ldf"),
        fine="--fine" if CFG.ldf.two_stage else "",
    threads: THREADS
    resources:
        gpu=1,
    log:
        "logs/ldf/train_ldf.log",
    benchmark:
        "logs/benchmark/ldf/train_ldf.tsv"
    shell:
        "wsss --processes {resources.gpu} train-ldf --sod {input.sod} --labels {input.labels} --out {output} {params.fine} {SET} > {log} 2>&1"


rule train_ldf_ablation:
    input:
        sod="data/prepared/sod",
        labels=rules.decouple.output[0],
    output:
        "models/ldf_ablation/{supervision}/seed{seed}/model.pt",
    params:
        cfg=rule_params(CFG, "train_ldf_ablation"),
    threads: THREADS
    resources:
        gpu=1,
    log:
        "logs/ldf/train_ldf_ablation/{supervision}_seed{seed}.log",
    benchmark:
        "logs/benchmark/ldf/train_ldf_ablation/{supervision}_seed{seed}.tsv"
    shell:
        "wsss --processes {resources.gpu} train-ldf --sod {input.sod} --labels {input.labels} --out {output} {SET}"
        " --set ldf.supervision={wildcards.supervision} --set seed={wildcards.seed} > {log} 2>&1"


rule infer_ldf:
    input:
        sod="data/prepared/sod",
        model=ldf_model,
    output:
        directory("data/saliency/{ldf_method}/{dataset}"),
    params:
        cfg=rule_params(CFG, "infer_ldf"),
    threads: THREADS
    resources:
        gpu=1,
    log:
        "logs/ldf/infer_ldf/{ldf_method}_{dataset}.log",
    benchmark:
        "logs/benchmark/ldf/infer_ldf/{ldf_method}_{dataset}.tsv"
    shell:
        "wsss infer-ldf --sod {input.sod} --model {input.model} --split {wildcards.dataset}"
        " --method {wildcards.ldf_method} --out {output} {SET} > {log} 2>&1"


rule summarize_sod:
    input:
        expand(f"{SOD_RESULTS}/ldf/{{dataset}}.json", dataset=CFG.sod.test_sets),
    output:
        report("results/sod_metrics.json", caption="../report/sod_metrics.rst", category="SOD"),
    params:
        cfg=rule_params(CFG, "summarize_sod"),
    log:
        "logs/ldf/summarize_sod.log",
    benchmark:
        "logs/benchmark/ldf/summarize_sod.tsv"
    shell:
        "wsss summarize-sod --out {output} {input} {SET} > {log} 2>&1"


rule summarize_ldf_ablation:
    input:
        **{f"{supervision}_seed{seed}": expand(f"{SOD_RESULTS}/{ablation_method(supervision, seed)}/{{dataset}}.json",
                                                 dataset=CFG.sod.test_sets)
           for supervision in SUPERVISIONS for seed in CFG.ldf_ablation.seeds},
    output:
        f"{SOD_RESULTS}/ldf_ablation.json",
        f"{SOD_RESULTS}/ldf_ablation.md",
    params:
        cfg=rule_params(CFG, "summarize_ldf_ablation"),
        rows=ablation_rows,
    log:
        "logs/ldf/summarize_ldf_ablation.log",
    benchmark:
        "logs/benchmark/ldf/summarize_ldf_ablation.tsv"
    shell:
        "wsss summarize-sod --ablation --out {output[0]} {params.rows} {SET} > {log} 2>&1"

# Evaluation rules for any method's outputs: CAMs and pseudo labels (`{pseudo}`: crf, rw, rw_crf) scored on VOC train (pseudo-label
# quality, the field's protocol: train ⊂ train_aug, so the train_aug folders hold them), and saliency
# maps on each SOD test set. `{method}` names the WSSS method (cam, seam, ...), `{sod_method}` the saliency
# method (ldf and its ablation rows).

VOC_GT = f"{CFG.voc.root}/SegmentationClass"


rule eval_cam:
    input:
        cams="data/cams/{method}/train_aug",
        voc="data/prepared/voc",
    output:
        scores=f"results/{CFG.voc_dataset}/{{method}}/cam_miou.json",
        per_class=report(f"results/{CFG.voc_dataset}/{{method}}/cam_iou.png", caption="../report/cam_iou.rst", category="WSSS"),
        sweep=report(f"results/{CFG.voc_dataset}/{{method}}/cam_iou_sweep.png", caption="../report/cam_sweep.rst", category="WSSS"),
    params:
        cfg=rule_params(CFG, "eval_cam"),
    threads: THREADS
    log:
        "logs/eval_cam/{method}.log",
    benchmark:
        "logs/benchmark/eval_cam/{method}.tsv"
    shell:
        "wsss evaluate segmentation --cams --pred {input.cams} --gt {VOC_GT} --list {input.voc}/train.txt"
        " --method {wildcards.method} --workers {threads} --out {output.scores} --plot {output.per_class} {SET} > {log} 2>&1"


rule eval_pseudo:
    input:
        labels=lambda wildcards: PSEUDO_LABELS[wildcards.pseudo].format(method=wildcards.method),
        voc="data/prepared/voc",
    output:
        f"results/{CFG.voc_dataset}/{{method}}/{{pseudo}}_miou.json",
    wildcard_constraints:
        pseudo="crf|rw|rw_crf",
    params:
        cfg=rule_params(CFG, "eval_pseudo"),
    threads: THREADS
    log:
        "logs/eval_pseudo/{method}_{pseudo}.log",
    benchmark:
        "logs/benchmark/eval_pseudo/{method}_{pseudo}.tsv"
    shell:
        "wsss evaluate segmentation --pred {input.labels} --gt {VOC_GT} --list {input.voc}/train.txt"
        " --method {wildcards.method} --workers {threads} --out {output} {SET} > {log} 2>&1"


rule eval_saliency:
    input:
        maps="data/saliency/{sod_method}/{dataset}",
        sod="data/prepared/sod",
    output:
        scores=f"results/{CFG.sod_dataset}/{{sod_method}}/{{dataset}}.json",
        plot=report(f"results/{CFG.sod_dataset}/{{sod_method}}/{{dataset}}_pr.png", caption="../report/sod_pr.rst",
                    category="SOD"),
    params:
        cfg=rule_params(CFG, "eval_saliency"),
    threads: THREADS
    log:
        "logs/eval_saliency/{sod_method}_{dataset}.log",
    benchmark:
        "logs/benchmark/eval_saliency/{sod_method}_{dataset}.tsv"
    shell:
        "wsss evaluate saliency --pred {input.maps} --gt {CFG.sod.root}/{wildcards.dataset} --name {wildcards.dataset}"
        " --method {wildcards.sod_method} --workers {threads} --out {output.scores} --plot {output.plot} {SET} > {log} 2>&1"

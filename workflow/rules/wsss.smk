# The WSSS chain: classifier -> CAMs -> dense-CRF pseudo labels -> DeepLab -> results/voc_miou.json.
# Paths carry the method (params.yaml `method`), so methods sit side by side.

METHOD = CFG.method
RESULTS = f"results/{CFG.voc_dataset}/{METHOD}"


rule train_cls:
    input:
        voc="data/prepared/voc",
    output:
        f"models/{METHOD}/classifier/model.pt",
    params:
        cfg=rule_params(CFG, "train_cls"),
    threads: 2
    resources:
        gpu=1,
    log:
        f"logs/{METHOD}/train_cls.log",
    benchmark:
        f"logs/benchmark/{METHOD}/train_cls.tsv"
    shell:
        "wsss train-cls --voc {input.voc} --out {output} {SET} > {log} 2>&1"


rule infer_cam:
    input:
        voc="data/prepared/voc",
        model=rules.train_cls.output[0],
    output:
        directory(f"data/cams/{METHOD}/train_aug"),
    params:
        cfg=rule_params(CFG, "infer_cam"),
    threads: 2
    resources:
        gpu=1,
    log:
        f"logs/{METHOD}/infer_cam.log",
    benchmark:
        f"logs/benchmark/{METHOD}/infer_cam.tsv"
    shell:
        "wsss infer-cam --voc {input.voc} --model {input.model} --split train_aug --out {output}"
        " --workers 1 {SET} > {log} 2>&1"


rule crf:
    input:
        voc="data/prepared/voc",
        cams=rules.infer_cam.output[0],
    output:
        directory(f"data/pseudo/{METHOD}/train_aug"),
    params:
        cfg=rule_params(CFG, "crf"),
    threads: 2
    log:
        f"logs/{METHOD}/crf.log",
    benchmark:
        f"logs/benchmark/{METHOD}/crf.tsv"
    shell:
        "wsss crf --voc {input.voc} --cams {input.cams} --split train_aug --out {output}"
        " --workers {threads} {SET} > {log} 2>&1"


SEG_FROM_CLASSIFIER = CFG.train_seg.weights == "classifier"


rule train_seg:
    input:
        voc="data/prepared/voc",
        labels=rules.crf.output[0],
        classifier=rules.train_cls.output[0] if SEG_FROM_CLASSIFIER else [],
    output:
        f"models/{METHOD}/deeplab/model.pt",
    params:
        cfg=rule_params(CFG, "train_seg"),
        classifier=f"--classifier {rules.train_cls.output[0]}" if SEG_FROM_CLASSIFIER else "",
    threads: 2
    resources:
        gpu=1,
    log:
        f"logs/{METHOD}/train_seg.log",
    benchmark:
        f"logs/benchmark/{METHOD}/train_seg.tsv"
    shell:
        "wsss train-seg --voc {input.voc} --labels {input.labels} {params.classifier} --out {output} {SET} > {log} 2>&1"


rule infer_seg:
    input:
        voc="data/prepared/voc",
        model=rules.train_seg.output[0],
    output:
        directory(f"data/predictions/{METHOD}/val"),
    params:
        cfg=rule_params(CFG, "infer_seg"),
    threads: 2
    resources:
        gpu=1,
    log:
        f"logs/{METHOD}/infer_seg.log",
    benchmark:
        f"logs/benchmark/{METHOD}/infer_seg.tsv"
    shell:
        "wsss infer-seg --voc {input.voc} --model {input.model} --split val --out {output} {SET} > {log} 2>&1"


rule eval_seg:
    input:
        voc="data/prepared/voc",
        labels=rules.infer_seg.output[0],
    output:
        scores=f"{RESULTS}/seg_miou.json",
        per_class=report(f"{RESULTS}/seg_iou.png", caption="../report/seg_iou.rst", category="WSSS"),
    params:
        cfg=rule_params(CFG, "eval_seg"),
    threads: 2
    log:
        f"logs/{METHOD}/eval_seg.log",
    benchmark:
        f"logs/benchmark/{METHOD}/eval_seg.tsv"
    shell:
        "wsss evaluate segmentation --pred {input.labels} --gt {VOC_GT} --list {input.voc}/val.txt"
        " --method {METHOD} --workers {threads} --out {output.scores} --plot {output.per_class} {SET} > {log} 2>&1"


rule summarize_voc:
    input:
        seg=rules.eval_seg.output.scores,
        cam=f"{RESULTS}/cam_miou.json",
        pseudo=f"{RESULTS}/pseudo_miou.json",
    output:
        report("results/voc_miou.json", caption="../report/voc_miou.rst", category="WSSS"),
    params:
        cfg=rule_params(CFG, "summarize_voc"),
    log:
        f"logs/{METHOD}/summarize_voc.log",
    benchmark:
        f"logs/benchmark/{METHOD}/summarize_voc.tsv"
    shell:
        "wsss summarize-voc --seg {input.seg} --cam {input.cam} --pseudo {input.pseudo} --out {output} {SET} > {log} 2>&1"

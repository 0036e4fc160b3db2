# The official ImageNet baseline schedule (step LR /10 every 30 epochs), kept only to reproduce the
# official comparison, whose grafting side used per-iteration cosine (a schedule confound).
_base_ = ['./baseline_resnet34-1net_1xb256-90e_in1k.py']
param_scheduler = [dict(type='StepLR', by_epoch=True, step_size=30, gamma=0.1)]

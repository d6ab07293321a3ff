"""torch.hub entry points: ``torch.hub.load("casiatao/UNIP", "unip_s")`` (pretrained, MAE-L teacher, by default)."""


dependencies = ["torch", "timm", "huggingface_hub", "safetensors"]

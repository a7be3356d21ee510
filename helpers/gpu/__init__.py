"""GPU speed layers, for a CUDA machine: loaded only there, behind build_trainer(speed=...) and generate(sampler=...).

plan.py  micro-batch / checkpointing / precision plan per card (GpuInfo, ModelShape), sampling batch sizes
lora.py  what a TrainSpeed applies: LoRA input upcast skipped, fused LoRA layers, cuDNN attention off while training
fast.py  static-cache CUDA-graph sampler (eager elsewhere); vllm.py one vLLM engine (LoRA as a request)
"""

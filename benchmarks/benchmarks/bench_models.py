"""neuro-models: the Llama baseline against ``transformers.LlamaForCausalLM`` (same weights).

Training step (forward + backward + AdamW, fp32 cross-entropy outside the model) at the issue-3
sizes, and greedy KV-cache generation. ``impl`` is ``ours``, ``hf`` (needs ``transformers``) or
``ours-compile`` (``torch.compile`` of our model; the first call compiles, in ``setup``).
The ratios the issue asks for are printed by ``benchmarks/scripts/models_throughput.py``.
"""

try:
    import torch
    import torch.nn.functional as F

    from neuro_models.generate import SamplingConfig, generate
    from neuro_models.llama import Llama
    from neuro_models.params import cpu_medium, cpu_small
except ImportError:  # an old commit without the package: asv skips the suite
    torch = None


def _models(impl, config):
    if torch is None:
        raise NotImplementedError("neuro_models not importable")
    torch.manual_seed(0)
    ours = Llama(config)
    if impl == "hf":
        try:
            from neuro_models.hf import to_hf
        except ImportError as err:
            raise NotImplementedError("transformers not installed") from err
        return to_hf(ours), True
    if impl == "ours-compile":
        return torch.compile(ours), False
    return ours, False


class TrainStep:
    params = (["ours", "hf", "ours-compile"], [256, 512], ["fp32", "bf16"])
    param_names = ["impl", "d_model", "precision"]
    timeout = 900

    def setup(self, impl, d_model, precision):
        config = {256: cpu_small, 512: cpu_medium}[d_model]()
        self.model, self.hf = _models(impl, config)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, weight_decay=0.1)
        gen = torch.Generator().manual_seed(0)
        self.tokens = torch.randint(0, config.vocab_size, (8, 257), generator=gen)
        self.bf16 = precision == "bf16"
        self.step()

    def step(self):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            x = self.tokens[:, :-1]
            logits = self.model(input_ids=x).logits if self.hf else self.model(x)
        loss = F.cross_entropy(logits.float().flatten(0, 1), self.tokens[:, 1:].flatten())
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def time_train_step(self, impl, d_model, precision):
        self.step()

    def peakmem_train_step(self, impl, d_model, precision):
        self.step()


class Generate:
    params = (["ours", "hf"], [1, 8])
    param_names = ["impl", "batch"]
    timeout = 300

    def setup(self, impl, batch):
        self.model, self.hf = _models(impl, cpu_small())
        self.model.eval()
        gen = torch.Generator().manual_seed(1)
        self.prompt = torch.randint(0, 4096, (batch, 32), generator=gen)
        self.run()

    def run(self):
        if not self.hf:
            return generate(
                self.model, self.prompt, SamplingConfig(max_new_tokens=64, temperature=0)
            )
        with torch.inference_mode():
            return self.model.generate(
                self.prompt,
                attention_mask=torch.ones_like(self.prompt),
                max_new_tokens=64,
                min_new_tokens=64,
                do_sample=False,
                pad_token_id=0,
                eos_token_id=None,
            )

    def time_generate_64(self, impl, batch):
        self.run()

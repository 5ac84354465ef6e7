"""The diffusers AutoencoderKL interface that the official SelftokPipeline calls
(`encode(x)[0].mode()`, `decode(z)[0]`), over the SD3 VAE modules of sd3_impls, so that the
pipeline runs without diffusers. Shared by the scripts that run the official code."""
import torch


class _Dist:
    def __init__(self, h):
        self.mean, self.logvar = torch.chunk(h, 2, dim=1)

    def mode(self):
        return self.mean


class AsAutoencoderKL(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def encode(self, x, return_dict=True):
        return (_Dist(self.vae.encoder(x)),)

    def decode(self, z, return_dict=True):
        return (self.vae.decoder(z),)

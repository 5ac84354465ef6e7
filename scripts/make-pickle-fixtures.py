"""Fixtures for test/import.test.ts (run by hand; CI only reads the files it writes):
a small state dict in torch.save's zip format (several dtypes, a strided view, a shared
storage), a file whose pickle would run code under plain torch.load, and a truncated copy.
Usage: python scripts/make-pickle-fixtures.py test/fixtures/import
"""
import collections, os, sys
import torch

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
g = torch.Generator().manual_seed(0)
base = torch.randn(3, 4, generator=g)
sd = collections.OrderedDict()
sd['a.weight'] = torch.nn.Parameter(torch.randn(2, 3, generator=g))
sd['a.bias'] = torch.arange(5, dtype=torch.int64)
sd['half'] = torch.randn(4, generator=g).half()
sd['bf16'] = torch.randn(2, 2, generator=g).bfloat16()
sd['base'] = base
sd['base_t'] = base.t()          # a strided view of the same storage
sd['base_row'] = base[1]         # an offset view of the same storage
sd['flag'] = torch.tensor([True, False, True])
sd['scalar'] = torch.tensor(3.5)
torch.save(sd, os.path.join(out, 'small.pth'))
# the expected values, as plain text the test can read
with open(os.path.join(out, 'small.expected.txt'), 'w') as f:
    for k, v in sd.items():
        v = v.detach()
        f.write(f"{k}\t{str(v.dtype).replace('torch.', '')}\t{list(v.shape)}\t{' '.join(repr(float(x)) for x in v.float().flatten().tolist())}\n")

class RunsCode:
    # under plain torch.load (weights_only=False) this calls os.system when the file is read
    def __reduce__(self):
        return (os.system, ('echo this checkpoint just ran a shell command',))

torch.save({'weight': torch.zeros(2), 'payload': RunsCode()}, os.path.join(out, 'runs-code.pth'))
data = open(os.path.join(out, 'small.pth'), 'rb').read()
open(os.path.join(out, 'truncated.pth'), 'wb').write(data[: len(data) // 2])
print('wrote', sorted(os.listdir(out)))

"""MGUIT on your own unpaired images: a folder with trainA/ trainB/ (testA/ testB/).

  python -m mguit_jax.main --config configs/folders.py:path=/data/summer2winter \
      --workdir runs/s2w

Arguments: path=<folder>, method=mguit|drit|unit|munit|init (mguit_jax/methods),
preset=paper|official (default: the method's first; paper for MGUIT), sizes=<memory items
per class, '-'-separated, background first>. Without boxes every pixel is background: one
memory of `sizes=20` items (the default). With a boxes sidecar (trainA.json or trainA.txt
beside trainA/, see mguit_jax/data/folders_tfds.py) give one entry per class, e.g.
sizes=10-5-2-3 for classes 1..3. Images of any format PIL reads; they are prepared once
into config.data.data_dir/image_folders at short side config.data.storage_short.
"""

from configs import common


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, path="", preset="", sizes="20", method="mguit")
  if not args.path:
    raise ValueError("configs/folders.py needs path=<folder with trainA/ and trainB/>")
  config = common.base_config(args.preset, args.method)
  config.data.name = "folders"
  config.data.domains = "A_B"
  config.data.folders.path = args.path
  try:
    sizes = tuple(int(s) for s in args.sizes.split("-"))
  except ValueError:
    raise ValueError(f"config argument sizes={args.sizes!r}: expected '-'-separated "
                     "integers, e.g. 20 or 10-5-2-3") from None
  if "memory" in config:   # methods with a memory of classes
    config.memory.sizes = sizes
  return config

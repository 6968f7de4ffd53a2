"""MGUIT for KITTI -> Cityscapes (the paper's domain-adaptive detection, Table 3).

  python -m mguit_jax.main --config configs/kitti_cityscapes.py --workdir runs/kitti2cs

Arguments: method=mguit|drit|unit|munit|init (mguit_jax/methods), preset=paper|official
(default: the method's first; paper for MGUIT). Classes person, car, truck, bicycle (ids
1-4) with 3 memory items each and 8 for the background, as in the paper. Raw files in
config.data.manual_dir/kitti (training/image_2, training/label_2, testing/image_2) and
config.data.manual_dir/cityscapes (leftImg8bit/, gtFine/). To translate the KITTI training
images (the detector's training set), read them as the test split:
--config.data.test_split=train.
"""

from configs import common


def get_config(arg: str | None = None):
  args = common.parse_arg(arg, preset="", method="mguit")
  config = common.base_config(args.preset, args.method)
  config.data.name = "kitti_cityscapes"
  config.data.domains = "kitti_cityscapes"
  if "memory" in config:   # methods with a memory of classes
    config.memory.sizes = (8, 3, 3, 3, 3)   # background, person, car, truck, bicycle
  config.train.num_steps = 60 * 7_481     # ~60 epochs of the KITTI training images
  return config

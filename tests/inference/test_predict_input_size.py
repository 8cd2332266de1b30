"""A model trained on a folder with ``image_size=`` sees new images as validation did (issue 26, smaller item):
the checkpoint records the resize and Predictor resizes each image to it, predicting at the image's own size."""

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from segkit import Trainer, build_dataset
from segkit.checkpoint import load_checkpoint
from segkit.inference import Predictor
from tests.engine._nets import TinyNet


def _folder(root, sizes):
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (h, w) in enumerate(sizes):
        mask = np.zeros((h, w), np.uint8)
        mask[h // 4 : h // 2, w // 3 :] = 1
        image = (rng.random((h, w, 3)) * 60 + mask[..., None] * 150).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"p{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"p{i}.png")


def test_the_resize_is_recorded_and_predictor_applies_it(tmp_path):
    _folder(tmp_path / "data", [(40, 48), (36, 60), (40, 48), (52, 44)])
    data = build_dataset("folder", root=tmp_path / "data", image_size=24)
    model = TinyNet(num_classes=2, width=4)
    Trainer(model, "ce", data, data, epochs=1, batch_size=4, out_dir=tmp_path / "run").fit()
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["input_size"] == [24, 24]

    predictor = Predictor(model, input_size=ckpt["input_size"], device="cpu")  # as from_checkpoint builds it
    image = np.asarray(Image.open(tmp_path / "data" / "images" / "p1.png"))  # 36x60
    got = predictor.predict(image)
    assert got.shape == (36, 60)
    # By hand: the dataset's resize (area: shrinking), ImageNet statistics, the model, bilinear back, argmax.
    small = cv2.resize(image, (24, 24), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    x = torch.from_numpy((small - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).float().permute(2, 0, 1)[None]
    with torch.no_grad():
        logits = F.interpolate(model.eval()(x), size=(36, 60), mode="bilinear", align_corners=False)
    np.testing.assert_array_equal(got, logits.argmax(1)[0].numpy())


def test_without_a_resize_images_are_predicted_at_their_own_size(tmp_path):
    _folder(tmp_path / "data", [(40, 48), (40, 48)])
    data = build_dataset("folder", root=tmp_path / "data")
    Trainer(TinyNet(num_classes=2, width=4), "ce", data, None, epochs=1, batch_size=2, out_dir=tmp_path / "run").fit()
    assert load_checkpoint(tmp_path / "run" / "last.pt")["input_size"] is None

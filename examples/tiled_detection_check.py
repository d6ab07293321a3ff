"""Does detecting a large raster tile by tile lose anything against detecting each picture whole?

A trained detector (``--detector``, or the detection demo trained here first, ~4 min on 2 CPU cores) looks at a
mosaic of held-out synthetic street scenes written as one georeferenced GeoTIFF, three ways:

* ``whole``: every scene detected on its own, as an image (the reference);
* ``tiled``: :func:`unip_hub.geo.detect_raster` over the mosaic in overlapping square tiles that cut through scenes
  and objects, the views of one object merged (:mod:`unip_hub.geo.tile_boxes`);
* ``tiled, NMS``: the same tiles' views through plain class-wise NMS at the detector's IoU (the usual way);
* ``tiled, unmerged``: the same tiles with every view kept (what the merge removes: duplicates and cut boxes).

Each is scored with COCO AP against the scenes' own boxes: the mosaic's detections are given back to the scene that
holds their centre, clipped to it (the ground truth ends at the scene borders too), so the usual 100 detections per
image hold per scene.

    python examples/tiled_detection_check.py --out runs/tiled_check
    python examples/tiled_detection_check.py --detector runs/det/best.pth --grid 6 6 --tile 128 --overlap 48
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.ops import batched_nms

from unip_hub.detection import DetectionPredictor, load_detector
from unip_hub.detection.evaluate import coco_evaluate
from unip_hub.geo import GeoSettings, detect_raster


def mosaic(grid: tuple[int, int], size: tuple[int, int], seed: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """(rows * h, cols * w) uint8 mosaic of held-out scenes and each scene's offset and ground-truth boxes."""
    from unip_hub.data.instances import instances_from_label
    from unip_hub.data.synthetic import CAR, PERSON, make_scene

    (rows, cols), (h, w) = grid, size
    picture = np.zeros((rows * h, cols * w), np.uint8)
    scenes = []
    for i in range(rows * cols):
        gray, label = make_scene(h, w, np.random.default_rng((seed, i)))
        inst = instances_from_label(label, [PERSON, CAR], min_area=6)
        y, x = (i // cols) * h, (i % cols) * w
        picture[y:y + h, x:x + w] = gray
        scenes.append({"gray": gray, "offset": (x, y), "boxes": inst["boxes"].numpy(),
                       "labels": inst["labels"].numpy() - 1})
    return picture, scenes


def write_geotiff(path: Path, picture: np.ndarray) -> Path:
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=picture.shape[1], height=picture.shape[0], count=1,
                       dtype="uint8", crs="EPSG:32633", transform=from_origin(500000.0, 5600000.0, 0.1, 0.1)) as ds:
        ds.write(picture, 1)
    return path


def ground_truth(scenes: list[dict[str, Any]], size: tuple[int, int], names: list[str]) -> dict[str, Any]:
    h, w = size
    annotations = [{"id": len(scenes) * 1000 + k, "image_id": i, "category_id": int(c) + 1, "iscrowd": 0,
                    "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                    "area": float((b[2] - b[0]) * (b[3] - b[1]))}
                   for i, s in enumerate(scenes) for k, (b, c) in enumerate(zip(s["boxes"], s["labels"]))]
    for n, a in enumerate(annotations):
        a["id"] = n + 1
    return {"images": [{"id": i, "width": w, "height": h} for i in range(len(scenes))], "annotations": annotations,
            "categories": [{"id": k + 1, "name": name} for k, name in enumerate(names)]}


def to_scenes(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, grid: tuple[int, int],
              size: tuple[int, int]) -> list[dict[str, Any]]:
    """COCO results of mosaic boxes (n, 4), each given to the scene holding its centre and clipped to it."""
    (rows, cols), (h, w) = grid, size
    results = []
    for box, score, label in zip(boxes, scores, labels):
        r = min(int((box[1] + box[3]) / 2 // h), rows - 1)
        c = min(int((box[0] + box[2]) / 2 // w), cols - 1)
        x0, y0 = np.clip(box[0] - c * w, 0, w), np.clip(box[1] - r * h, 0, h)
        x1, y1 = np.clip(box[2] - c * w, 0, w), np.clip(box[3] - r * h, 0, h)
        if x1 > x0 and y1 > y0:
            results.append({"image_id": r * cols + c, "category_id": int(label) + 1, "score": float(score),
                            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]})
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detector", default=None, help="a trained detector file (default: train the demo's first)")
    p.add_argument("--out", default="runs/tiled_check")
    p.add_argument("--grid", type=int, nargs=2, default=(4, 4), metavar=("ROWS", "COLS"))
    p.add_argument("--tile", type=int, default=128, help="tile side (the demo's scenes are 128 x 160)")
    p.add_argument("--overlap", type=int, default=48)
    p.add_argument("--seed", type=int, default=1000, help="scenes' seed (the demo trains and tests on seed 0)")
    p.add_argument("--quick", action="store_true", help="seconds: the quick demo detector, 2 x 2 small scenes")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.detector is None:
        from unip_hub.detection.demo import run_detection_demo

        run_detection_demo(out / "demo", iterations=8 if args.quick else None, quick=args.quick, progress=False)
        args.detector = str(out / "demo" / "run" / "best.pth")
    det = load_detector(args.detector)
    size = (64, 80) if args.quick else (128, 160)
    grid, tile = ((2, 2), 64) if args.quick else (tuple(args.grid), args.tile)
    overlap = min(args.overlap, tile // 2)
    picture, scenes = mosaic(grid, size, args.seed)
    raster = write_geotiff(out / "mosaic.tif", picture)
    predictor = DetectionPredictor(det)
    names = predictor.class_names
    gt = ground_truth(scenes, size, names)

    whole = []
    for i, s in enumerate(scenes):
        found = predictor.predict(s["gray"])
        x, y = s["offset"]
        shifted = found["boxes"].numpy() + np.array([x, y, x, y])
        whole += [dict(r, image_id=i) for r in to_scenes(shifted, found["scores"].numpy(), found["labels"].numpy(),
                                                         grid, size) if r["image_id"] == i]
    settings = GeoSettings(tile_size=tile, overlap=overlap, batch_tiles=4, preview=False)
    tiled = detect_raster(predictor, raster, out / "tiled", settings)
    boxes = np.array([[d["x0"], d["y0"], d["x1"], d["y1"]] for d in tiled.detections]).reshape(-1, 4)
    tiled_results = to_scenes(boxes, np.array([d["score"] for d in tiled.detections]),
                              np.array([d["class"] for d in tiled.detections]), grid, size)
    tiles = _tile_views(raster, predictor, settings)
    boxes = np.concatenate([t.boxes for t in tiles]).reshape(-1, 4)  # every tile's views, raster pixels
    scores = np.concatenate([t.scores for t in tiles]).astype(np.float64)
    labels = np.concatenate([t.labels for t in tiles]).astype(np.int64)
    unmerged = to_scenes(boxes, scores, labels, grid, size)
    keep = batched_nms(torch.as_tensor(boxes, dtype=torch.float32), torch.as_tensor(scores, dtype=torch.float32),
                       torch.as_tensor(labels), float(det.nms_thresh)).numpy()
    nms = to_scenes(boxes[keep], scores[keep], labels[keep], grid, size)
    report = {}
    for name, results in (("whole", whole), ("tiled", tiled_results), ("tiled, NMS", nms),
                          ("tiled, unmerged", unmerged)):
        metrics = coco_evaluate(gt, results, names)
        report[name] = {"detections": len(results), "AP50": metrics["AP50"], "AP": metrics["AP"]}
        print(f"{name:16s} {len(results):5d} detections  AP50 {100 * metrics['AP50']:6.2f}  "
              f"AP {100 * metrics['AP']:6.2f}")
    report.update(grid=list(grid), scene=list(size), tile=tile, overlap=overlap, tiles=tiled.run.tiles,
                  ground_truth=len(gt["annotations"]), detector=args.detector)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def _tile_views(raster: Path, predictor: Any, settings: GeoSettings) -> list[Any]:
    """The tiles' own detections, before merging."""
    import rasterio

    from unip_hub.geo.detect import detect_tiles
    from unip_hub.geo.raster import inspect_raster
    from unip_hub.geo.scaling import raster_reading

    with rasterio.open(raster) as ds:
        info = inspect_raster(ds)
        reading = raster_reading(ds, info, predictor.scaling, predictor.calibration)
        return detect_tiles(ds, info, reading, predictor, settings)[1]


if __name__ == "__main__":
    main()

"""Datasets: the synthetic road-scene generator and COCO/YOLO readers."""

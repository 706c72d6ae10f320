"""Scaling out: teacher labeling on a Ray actor pool, student training with DDP.

Both are optional paths to the same results as the single-process stages: Ray labeling
writes the same content-keyed soft-label cache, and DDP training with the same global batch
reproduces a single-process run up to floating-point rounding. Nothing heavy is imported
here; `ray` is imported only when a Ray function is called.
"""

from tinystudent.scale.ddp import train_student_ddp, write_job
from tinystudent.scale.ray_label import label_texts_ray, map_batches_actors, ray_session

__all__ = ["label_texts_ray", "map_batches_actors", "ray_session", "train_student_ddp", "write_job"]

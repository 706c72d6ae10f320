"""torchrun entry point: `python -m tinystudent.scale.ddp_worker JOB_DIR OUT_DIR`.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; every rank reads the
job written by `tinystudent.scale.write_job` (on a filesystem all nodes see) and rank 0 saves
the student into OUT_DIR. Runs with plain `python` too (one process, no process group).
"""

from __future__ import annotations

import argparse
import os

import torch.distributed as dist

from tinystudent.scale.ddp import init_from_env, job_device, run_worker


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("job_dir", help="directory written by tinystudent.scale.write_job")
    ap.add_argument("out_dir", help="where rank 0 saves the student and train_log.json")
    ap.add_argument("--backend", choices=["gloo", "nccl"], help="default: nccl if CUDA, else gloo")
    args = ap.parse_args(argv)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        init_from_env(args.backend, job_device(args.job_dir))
    try:
        run_worker(args.job_dir, args.out_dir)
        if distributed:
            dist.barrier()  # no rank leaves before rank 0 has saved
    finally:
        if distributed:
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

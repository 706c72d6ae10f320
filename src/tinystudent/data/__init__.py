"""Data stage: load a labeled text dataset, then split it into k-shot train, test and pool."""

from tinystudent.data.dataset import TextDataset
from tinystudent.data.load import load_dataset
from tinystudent.data.split import Split, make_split

__all__ = ["TextDataset", "Split", "load_dataset", "make_split"]

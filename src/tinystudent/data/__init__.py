"""Data stage: load a labeled text dataset, then split it into k-shot train, test and pool."""

from tinystudent.data.dataset import TextDataset
from tinystudent.data.files import load_file
from tinystudent.data.load import load_dataset
from tinystudent.data.problems import DataProblemsError, OnConflict
from tinystudent.data.split import Split, make_split

__all__ = [
    "DataProblemsError",
    "OnConflict",
    "Split",
    "TextDataset",
    "load_dataset",
    "load_file",
    "make_split",
]

"""Data stage: load a labeled text dataset, then split it into k-shot train, test and pool."""

from tinystudent.data.dataset import TextDataset
from tinystudent.data.files import load_file
from tinystudent.data.load import load_dataset, load_multilabel_dataset
from tinystudent.data.multifiles import load_multilabel_file
from tinystudent.data.multilabel import MultiLabelDataset
from tinystudent.data.multisplit import make_multilabel_split
from tinystudent.data.problems import DataProblemsError, OnConflict
from tinystudent.data.split import Split, make_split

__all__ = [
    "DataProblemsError",
    "MultiLabelDataset",
    "OnConflict",
    "Split",
    "TextDataset",
    "load_dataset",
    "load_file",
    "load_multilabel_dataset",
    "load_multilabel_file",
    "make_multilabel_split",
    "make_split",
]

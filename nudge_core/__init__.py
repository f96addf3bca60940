"""NUDGE Explorer's engine: load retrieval data, split queries, fine-tune record embeddings with
NUDGE-M / NUDGE-N, run baselines, evaluate. Pure numpy/scipy; no UI imports."""

from .data import Dataset, QuerySet, dataset_from_arrays, load_dataset, load_query_set
from .errors import DataError
from .experiment import ExperimentResult, Settings, run_experiment
from .nudge import NudgeM, NudgeN
from .splits import Split, kmeans_ood_split, paper_split, split_from_json, split_from_qrels_files

__all__ = ["DataError", "Dataset", "ExperimentResult", "NudgeM", "NudgeN", "QuerySet", "Settings",
           "Split", "dataset_from_arrays", "kmeans_ood_split", "load_dataset", "load_query_set",
           "paper_split", "run_experiment", "split_from_json", "split_from_qrels_files"]

"""NUDGE Explorer's engine: load retrieval data, split queries, fine-tune record embeddings with
NUDGE-M / NUDGE-N, run baselines, evaluate. Pure numpy/scipy; no UI imports."""

from .data import Dataset, QuerySet, dataset_from_arrays, load_dataset, load_query_set
from .errors import DataError
from .experiment import ExperimentResult, run_experiment
from .nudge import NudgeM, NudgeN
from .runspec import GammaSpec, MethodSettings, RunSpec, SpecError, SplitSpec, load_run, make_split
from .splits import Split, kmeans_ood_split, paper_split, split_from_json, split_from_qrels_files

__all__ = ["DataError", "Dataset", "ExperimentResult", "GammaSpec", "MethodSettings", "NudgeM",
           "NudgeN", "QuerySet", "RunSpec", "SpecError", "Split", "SplitSpec",
           "dataset_from_arrays", "kmeans_ood_split", "load_dataset", "load_query_set", "load_run",
           "make_split", "paper_split", "run_experiment", "split_from_json",
           "split_from_qrels_files"]

"""Recommenders. Importing this package registers every model in `Recommender.registry`."""

from recsys.models.base import NotFittedError, Recommender
from recsys.models.buy_again import BuyAgain
from recsys.models.implicit_models import ALS, BPR, ItemKNN
from recsys.models.lightfm_model import LightFMHybrid
from recsys.models.popularity import Popularity
from recsys.models.ranker import GroceryRanker

__all__ = [
    "ALS",
    "BPR",
    "BuyAgain",
    "GroceryRanker",
    "ItemKNN",
    "LightFMHybrid",
    "NotFittedError",
    "Popularity",
    "Recommender",
]

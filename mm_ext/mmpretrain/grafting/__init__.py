"""Filter grafting and DGD for mmpretrain (spec Parts B, C, E.2)."""
from .grafting_accuracy import GraftingAccuracy
from .grafting_classifier import GraftingClassifier
from .grafting_dataset import GraftingDataset
from .grafting_hook import GraftingHook
from .grafting_optim_wrapper_constructor import GraftingOptimWrapperConstructor
from .grafting_rank_wrapper import GraftingRankWrapper
from .grafting_sampler import GraftingSampler

__all__ = ['GraftingAccuracy', 'GraftingClassifier', 'GraftingDataset', 'GraftingHook',
           'GraftingOptimWrapperConstructor', 'GraftingRankWrapper', 'GraftingSampler']

"""DSM and BE / TBE self-supervised video pretraining for mmaction2 (registration on import)."""
from .bn_c3d import BNC3D
from .bn_inception_i3d import BNInceptionI3D
from .r2plus1d_release import ResNet2Plus1dRelease
from .video_contrastive import VideoContrastive
from .video_retrieval_metric import VideoRetrievalMetric
from .video_ssl_ddp import VideoSSLDistributedDataParallel
from .video_ssl_color_jitter import VideoSSLColorJitter
from .video_ssl_multi_view import VideoSSLMultiView
from .video_ssl_random_rotation import VideoSSLRandomRotation
from .video_ssl_sample_frames import VideoSSLSampleFrames

__all__ = ['BNC3D', 'BNInceptionI3D', 'ResNet2Plus1dRelease', 'VideoContrastive',
           'VideoRetrievalMetric', 'VideoSSLDistributedDataParallel', 'VideoSSLColorJitter', 'VideoSSLMultiView',
           'VideoSSLRandomRotation', 'VideoSSLSampleFrames']

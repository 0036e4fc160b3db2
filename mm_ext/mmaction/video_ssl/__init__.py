"""DSM and BE / TBE self-supervised video pretraining for mmaction2 (registration on import)."""
from .bn_inception_i3d import BNInceptionI3D
from .video_contrastive import VideoContrastive
from .video_retrieval_metric import VideoRetrievalMetric
from .video_ssl_color_jitter import VideoSSLColorJitter
from .video_ssl_multi_view import VideoSSLMultiView
from .video_ssl_random_rotation import VideoSSLRandomRotation
from .video_ssl_sample_frames import VideoSSLSampleFrames

__all__ = ['BNInceptionI3D', 'VideoContrastive', 'VideoRetrievalMetric', 'VideoSSLColorJitter',
           'VideoSSLMultiView', 'VideoSSLRandomRotation', 'VideoSSLSampleFrames']

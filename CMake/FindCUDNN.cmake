# Finds cuDNN (9.x): sets CUDNN_FOUND, CUDNN_VERSION and the imported target CUDNN::cudnn.

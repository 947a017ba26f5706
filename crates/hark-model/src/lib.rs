//! hark's acoustic model: log-mel features in, per-frame character
//! log-probabilities out, for CTC decoding by `hark-decode`.
//!
//! A 1-D time-channel-separable convolution stack in the QuartzNet/MatchboxNet
//! family: a stride-2 stem, residual blocks of depthwise + pointwise
//! convolution with batch norm, and a 1×1 head over [`Alphabet::SIZE`]
//! symbols. The receptive field is bounded (stem + blocks × (kernel − 1)), so
//! the model can stream. Written once against Burn's run-time `Device`, it runs
//! on `flex` (CPU, native and wasm) and on wgpu/WebGPU.
//!
//! **Architecture Invariant:** this crate never does IO: weights come in as
//! bytes ([`AcousticModel::from_bytes`]) and features as tensors.
//!
//! [`Alphabet::SIZE`]: hark_decode::Alphabet::SIZE

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig1d};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Tensor};

/// Shape of the acoustic model. Defaults: ~0.8 M parameters.
#[derive(Config, Debug)]
pub struct AcousticModelConfig {
    /// Mel bands of the input features.
    #[config(default = 80)]
    pub n_mels: usize,
    /// Output symbols (CTC blank included).
    #[config(default = 29)]
    pub vocab: usize,
    /// Channels of every block.
    #[config(default = 256)]
    pub channels: usize,
    /// Residual separable blocks.
    #[config(default = 8)]
    pub blocks: usize,
    /// Kernel width of the depthwise convolutions (odd).
    #[config(default = 11)]
    pub kernel: usize,
}

/// Depthwise conv over time, pointwise conv over channels, batch norm, ReLU,
/// with a residual connection.
#[derive(Module, Debug)]
pub struct SeparableBlock {
    depthwise: Conv1d,
    pointwise: Conv1d,
    norm: BatchNorm,
}

impl SeparableBlock {
    fn new(channels: usize, kernel: usize, device: &Device) -> Self {
        let pad = kernel / 2;
        Self {
            depthwise: Conv1dConfig::new(channels, channels, kernel)
                .with_groups(channels)
                .with_padding(PaddingConfig1d::Explicit(pad, pad))
                .with_bias(false)
                .init(device),
            pointwise: Conv1dConfig::new(channels, channels, 1).with_bias(false).init(device),
            norm: BatchNormConfig::new(channels).init(device),
        }
    }

    // [batch, channels, frames] -> [batch, channels, frames]
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let y = self.norm.forward(self.pointwise.forward(self.depthwise.forward(x.clone())));
        relu(y + x)
    }
}

/// The acoustic model.
#[derive(Module, Debug)]
pub struct AcousticModel {
    stem: Conv1d,
    stem_norm: BatchNorm,
    blocks: Vec<SeparableBlock>,
    head: Conv1d,
}

/// Weights that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("model weights are not a valid burnpack for this model shape: {0}")]
    Load(String),
    #[error("could not serialise model weights: {0}")]
    Save(String),
}

impl AcousticModelConfig {
    pub fn init(&self, device: &Device) -> AcousticModel {
        let pad = self.kernel / 2;
        AcousticModel {
            stem: Conv1dConfig::new(self.n_mels, self.channels, self.kernel)
                .with_stride(2)
                .with_padding(PaddingConfig1d::Explicit(pad, pad))
                .init(device),
            stem_norm: BatchNormConfig::new(self.channels).init(device),
            blocks: (0..self.blocks).map(|_| SeparableBlock::new(self.channels, self.kernel, device)).collect(),
            head: Conv1dConfig::new(self.channels, self.vocab, 1).init(device),
        }
    }
}

impl AcousticModel {
    /// Frames out for `frames` in (the stem halves the frame rate).
    pub fn output_frames(frames: usize) -> usize {
        frames.div_ceil(2)
    }

    /// `features` `[batch, n_mels, frames]` → log-probabilities
    /// `[batch, frames / 2, vocab]`.
    pub fn forward(&self, features: Tensor<3>) -> Tensor<3> {
        // [batch, mels, frames] -> [batch, channels, frames/2]
        let mut x = relu(self.stem_norm.forward(self.stem.forward(features)));
        for block in &self.blocks {
            x = block.forward(x);
        }
        // [batch, vocab, frames/2] -> [batch, frames/2, vocab]
        log_softmax(self.head.forward(x).swap_dims(1, 2), 2)
    }

    /// Weights as bytes (burnpack).
    pub fn to_bytes(&self) -> Result<Vec<u8>, WeightsError> {
        let mut store = BurnpackStore::from_bytes(None);
        self.save_into(&mut store).map_err(|e| WeightsError::Save(e.to_string()))?;
        let bytes = store.get_bytes().map_err(|e| WeightsError::Save(e.to_string()))?;
        Ok(bytes.to_vec())
    }

    /// A model of shape `config` with the weights in `bytes`.
    pub fn from_bytes(config: &AcousticModelConfig, bytes: Vec<u8>, device: &Device) -> Result<Self, WeightsError> {
        let mut model = config.init(device);
        let mut store = BurnpackStore::from_bytes(Some(burn::tensor::Bytes::from_bytes_vec(bytes)));
        model.load_from(&mut store).map_err(|e| WeightsError::Load(e.to_string()))?;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(device: &Device, batch: usize, frames: usize) -> Tensor<3> {
        Tensor::<3>::random([batch, 80, frames], burn::tensor::Distribution::Normal(0.0, 1.0), device)
    }

    #[test]
    fn halves_the_frame_rate_and_outputs_log_probabilities() {
        let device = Device::flex();
        let model = AcousticModelConfig::new().init(&device);
        let out = model.forward(features(&device, 2, 101));
        assert_eq!(out.dims(), [2, AcousticModel::output_frames(101), hark_decode::Alphabet::SIZE]);
        let sums: Vec<f32> = out.exp().sum_dim(2).into_data().try_to_vec::<f32>().unwrap();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-4), "{sums:?}");
    }

    #[test]
    fn default_size_is_within_the_budget() {
        let model = AcousticModelConfig::new().init(&Device::flex());
        let params = model.num_params();
        assert!((300_000..=2_000_000).contains(&params), "{params} parameters");
    }

    #[test]
    fn weights_round_trip_through_bytes() {
        let device = Device::flex();
        let config = AcousticModelConfig::new().with_channels(64).with_blocks(2);
        let model = config.init(&device);
        let bytes = model.to_bytes().unwrap();
        let loaded = AcousticModel::from_bytes(&config, bytes, &device).unwrap();
        let x = features(&device, 1, 40);
        let (a, b) = (model.forward(x.clone()), loaded.forward(x));
        let diff: f32 = (a - b).abs().max().into_scalar();
        assert!(diff < 1e-6, "{diff}");
    }

    #[test]
    fn mismatched_or_corrupt_weights_are_refused() {
        let device = Device::flex();
        let small = AcousticModelConfig::new().with_channels(64).with_blocks(2);
        let bytes = small.init(&device).to_bytes().unwrap();
        assert!(AcousticModel::from_bytes(&AcousticModelConfig::new(), bytes.clone(), &device).is_err());
        assert!(AcousticModel::from_bytes(&small, bytes[..bytes.len() / 2].to_vec(), &device).is_err());
        assert!(AcousticModel::from_bytes(&small, b"not weights".to_vec(), &device).is_err());
    }
}

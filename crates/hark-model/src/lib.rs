//! hark's acoustic model: log-mel features in, per-frame character
//! log-probabilities out, for CTC decoding by `hark-decode`.
//!
//! A 1-D time-channel-separable convolution stack in the QuartzNet/MatchboxNet
//! family: a stride-2 convolution stem, residual blocks of depthwise +
//! pointwise convolution with layer norm, and a per-frame linear head over
//! [`Alphabet::SIZE`] symbols. After the stem, activations are time-major
//! `[batch, frames, channels]`: pointwise layers are then one large matmul
//! each, and layer norm (unlike batch norm) behaves the same for one streamed
//! utterance as for a padded training batch. The receptive field is bounded (stem + blocks × (kernel − 1)), so
//! the model can stream. Written once against Burn's run-time `Device`, it runs
//! on `flex` (CPU, native and wasm) and on wgpu/WebGPU.
//!
//! **Architecture Invariant:** this crate never does IO: weights come in as
//! bytes ([`AcousticModel::from_bytes`]) and features as tensors.
//!
//! [`Alphabet::SIZE`]: hark_decode::Alphabet::SIZE

use burn::config::Config;
use burn::module::Module;
use burn::module::Param;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig1d};
use burn::store::{BurnpackStore, HalfPrecisionAdapter, ModuleSnapshot};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor};
use hark_decode::Units;

/// Shape of the acoustic model. Defaults: ~0.8 M parameters.
#[derive(Config, Debug)]
pub struct AcousticModelConfig {
    /// Mel bands of the input features.
    #[config(default = 80)]
    pub n_mels: usize,
    /// Output symbols (CTC blank included): `units.size()`.
    #[config(default = 29)]
    pub vocab: usize,
    /// What the output symbols are ([`AcousticModelConfig::units`]): `None`
    /// is letters, as in every configuration written before phone models
    /// existed (which have no such field).
    pub units: Option<Units>,
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

/// A depthwise ("same"-padded, stride 1) convolution over time on time-major
/// activations `[batch, frames, channels]`: every channel has its own
/// `kernel`-tap filter.
///
/// Written as a sum of `kernel` time-shifted copies of the input scaled per
/// channel, not as a grouped `Conv1d`: Burn's `flex` backend runs grouped
/// convolutions through its generic conv3d path as many tiny GEMMs, and their
/// backward pass (conv-transpose) dominated a training step. Shift-and-add is
/// a handful of large contiguous element-wise operations that every backend —
/// flex native and wasm, wgpu, WebGPU — runs at memory speed, forward and
/// backward. Same function as `Conv1d` with `groups == channels` (tested).
#[derive(Module, Debug)]
pub struct DepthwiseConv1d {
    /// `[kernel, channels]`.
    weight: Param<Tensor<2>>,
}

impl DepthwiseConv1d {
    /// Initialised as `Conv1d` would be (Kaiming uniform, fan-in = `kernel`).
    pub fn new(channels: usize, kernel: usize, device: &Device) -> Self {
        let init = Initializer::KaimingUniform { gain: 1.0 / 3.0f64.sqrt(), fan_out_only: false };
        Self { weight: init.init_with([kernel, channels], Some(kernel), Some(kernel), device) }
    }

    /// `[batch, frames, channels]` → `[batch, frames, channels]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, frames, channels] = x.dims();
        let [kernel, _] = self.weight.dims();
        let pad = kernel / 2;
        let padded = x.pad([(pad, kernel - 1 - pad), (0, 0)], PadMode::Constant(0.0));
        let w = self.weight.val();
        let tap = |k: usize| padded.clone().narrow(1, k, frames) * w.clone().narrow(0, k, 1).reshape([1, 1, channels]);
        (1..kernel).fold(tap(0), |acc, k| acc + tap(k))
    }
}

/// Depthwise conv over time, pointwise (linear) over channels, layer norm,
/// ReLU, with a residual connection. Time-major `[batch, frames, channels]`.
#[derive(Module, Debug)]
pub struct SeparableBlock {
    depthwise: DepthwiseConv1d,
    pointwise: Linear,
    norm: LayerNorm,
}

impl SeparableBlock {
    fn new(channels: usize, kernel: usize, device: &Device) -> Self {
        Self {
            depthwise: DepthwiseConv1d::new(channels, kernel, device),
            pointwise: LinearConfig::new(channels, channels).with_bias(false).init(device),
            norm: LayerNormConfig::new(channels).init(device),
        }
    }

    /// A block that passes its input through unchanged: the layer norm's
    /// scale and shift start at zero, so `y = 0` and the block computes
    /// `relu(x) = x` on the (non-negative) output of the block before it.
    /// Gradients still reach the scale, so training grows it from there.
    fn identity(channels: usize, kernel: usize, device: &Device) -> Self {
        let mut block = Self::new(channels, kernel, device);
        block.norm.gamma = Param::from_tensor(Tensor::zeros([channels], device));
        block.norm.beta = Some(Param::from_tensor(Tensor::zeros([channels], device)));
        block
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let y = self.norm.forward(self.pointwise.forward(self.depthwise.forward(x.clone())));
        relu(y + x)
    }
}

/// The acoustic model.
#[derive(Module, Debug)]
pub struct AcousticModel {
    stem: Conv1d,
    stem_norm: LayerNorm,
    blocks: Vec<SeparableBlock>,
    head: Linear,
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
    /// What the output symbols are: letters, or phones read through a
    /// pronunciation lexicon.
    pub fn units(&self) -> Units {
        self.units.unwrap_or_default()
    }

    /// The same shape writing `units`: the output layer's size follows
    /// (letters are recorded as `None`, as before phone models existed).
    pub fn with_output(self, units: Units) -> Self {
        self.with_units((units == Units::Phones).then_some(units)).with_vocab(units.size())
    }

    pub fn init(&self, device: &Device) -> AcousticModel {
        let pad = self.kernel / 2;
        AcousticModel {
            stem: Conv1dConfig::new(self.n_mels, self.channels, self.kernel)
                .with_stride(2)
                .with_padding(PaddingConfig1d::Explicit(pad, pad))
                .init(device),
            stem_norm: LayerNormConfig::new(self.channels).init(device),
            blocks: (0..self.blocks).map(|_| SeparableBlock::new(self.channels, self.kernel, device)).collect(),
            head: LinearConfig::new(self.channels, self.vocab).init(device),
        }
    }
}

impl AcousticModel {
    /// Frames out for `frames` in (the stem halves the frame rate).
    pub fn output_frames(frames: usize) -> usize {
        frames.div_ceil(2)
    }

    /// The model's input `[batch, n_mels, frames]` from per-utterance
    /// row-major `[frames, n_mels]` features (as `hark-dsp` computes them),
    /// zero-padded to the longest.
    pub fn input(batch: &[&[f32]], n_mels: usize, device: &Device) -> Tensor<3> {
        let frames_of = |f: &[f32]| f.len() / n_mels.max(1);
        let max = batch.iter().map(|f| frames_of(f)).max().unwrap_or(0);
        let mut data = vec![0.0f32; batch.len() * n_mels * max];
        for (b, features) in batch.iter().enumerate() {
            for t in 0..frames_of(features) {
                for m in 0..n_mels {
                    data[(b * n_mels + m) * max + t] = features[t * n_mels + m];
                }
            }
        }
        Tensor::from_data(burn::tensor::TensorData::new(data, [batch.len(), n_mels, max]), device)
    }

    /// `features` `[batch, n_mels, frames]` → log-probabilities
    /// `[batch, frames / 2, vocab]`.
    pub fn forward(&self, features: Tensor<3>) -> Tensor<3> {
        // [batch, mels, frames] -> [batch, frames/2, channels]: time-major from
        // here on, so pointwise layers are one large matmul each.
        let mut x = relu(self.stem_norm.forward(self.stem.forward(features).swap_dims(1, 2)));
        for block in &self.blocks {
            x = block.forward(x);
        }
        log_softmax(self.head.forward(x), 2)
    }

    /// The same function with `blocks` residual blocks: blocks are appended
    /// after the last one as exact identities ([`SeparableBlock::identity`]),
    /// so a trained model can grow deeper and keep training from where it
    /// is (Net2Net-style) instead of starting over. Fewer blocks than the
    /// model has: unchanged.
    pub fn deepened(mut self, blocks: usize) -> Self {
        let Some(last) = self.blocks.last() else { return self };
        let [kernel, channels] = last.depthwise.weight.dims();
        let device = last.depthwise.weight.val().device();
        while self.blocks.len() < blocks {
            self.blocks.push(SeparableBlock::identity(channels, kernel, &device));
        }
        self
    }

    /// The same network with a fresh output layer over `vocab` symbols:
    /// what a model trained on one kind of units ([`Units`]) keeps when it
    /// starts learning another (transfer learning: the convolutions already
    /// hear speech).
    pub fn with_head(mut self, vocab: usize) -> Self {
        let [channels, _] = self.head.weight.dims();
        let device = self.head.weight.val().device();
        self.head = LinearConfig::new(channels, vocab).init(&device);
        self
    }

    /// Residual blocks.
    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Weights as bytes (burnpack).
    pub fn to_bytes(&self) -> Result<Vec<u8>, WeightsError> {
        let mut store = BurnpackStore::from_bytes(None);
        self.save_into(&mut store).map_err(|e| WeightsError::Save(e.to_string()))?;
        let bytes = store.get_bytes().map_err(|e| WeightsError::Save(e.to_string()))?;
        Ok(bytes.to_vec())
    }

    /// Weights as bytes with every float stored as f16: half the download.
    /// [`AcousticModel::from_bytes`] reads both.
    pub fn to_bytes_f16(&self) -> Result<Vec<u8>, WeightsError> {
        let mut store = BurnpackStore::from_bytes(None).with_to_adapter(half_precision());
        self.save_into(&mut store).map_err(|e| WeightsError::Save(e.to_string()))?;
        let bytes = store.get_bytes().map_err(|e| WeightsError::Save(e.to_string()))?;
        Ok(bytes.to_vec())
    }

    /// A model of shape `config` with the weights in `bytes` (f32 or f16
    /// burnpack; computation is always f32).
    pub fn from_bytes(config: &AcousticModelConfig, bytes: Vec<u8>, device: &Device) -> Result<Self, WeightsError> {
        let mut model = config.init(device);
        let mut store = BurnpackStore::from_bytes(Some(burn::tensor::Bytes::from_bytes_vec(bytes)));
        let applied = model.load_from(&mut store).map_err(|e| WeightsError::Load(e.to_string()))?;
        // Extra tensors mean the file holds a bigger model (more blocks):
        // loading it would silently drop part of the network.
        if !applied.unused.is_empty() {
            return Err(WeightsError::Load(format!(
                "the file holds {} tensors this shape has no place for (first: {}): a model of another shape; \
                 pass its config.json",
                applied.unused.len(),
                applied.unused[0]
            )));
        }
        // An f16 file loads as f16 parameters: bring them back to f32.
        Ok(model.cast_floats_to_f32())
    }

    /// The parameter-wise mean of `models` (all of one shape): checkpoint
    /// averaging, which smooths the noise of the last steps of training
    /// without costing anything at inference. The model has no batch
    /// statistics (layer norm only), so every weight is a parameter.
    pub fn average(models: Vec<AcousticModel>) -> Result<Self, WeightsError> {
        Self::weighted_average(models.into_iter().map(|m| (m, 1.0)).collect())
    }

    /// The parameter-wise weighted mean of `models` (weights need not sum
    /// to 1; they must be positive): e.g. a fine-tuned model interpolated
    /// with the model it started from, which keeps more of what the start
    /// knew than the fine-tune alone (weight-space ensembling, "WiSE-FT").
    pub fn weighted_average(models: Vec<(AcousticModel, f32)>) -> Result<Self, WeightsError> {
        if models.iter().any(|(_, w)| !(w.is_finite() && *w > 0.0)) {
            return Err(WeightsError::Load("average weights must be positive numbers".into()));
        }
        /// Weighted sums of every float parameter, in visiting order.
        struct Sum(Vec<Tensor<1>>, usize, f32);
        impl burn::module::ModuleVisitor for Sum {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let flat = param.val().flatten::<1>(0, D - 1) * self.2;
                match self.0.get_mut(self.1) {
                    Some(sum) => *sum = sum.clone() + flat,
                    None => self.0.push(flat),
                }
                self.1 += 1;
            }
        }
        struct Mean(Vec<Tensor<1>>, usize, f32);
        impl burn::module::ModuleMapper for Mean {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let (sums, i, n) = (&self.0, self.1, self.2);
                self.1 += 1;
                param.map(|t| (sums[i].clone() / n).reshape(t.shape()))
            }
        }
        let total: f32 = models.iter().map(|(_, w)| w).sum();
        let mut models = models.into_iter();
        let Some((first, first_weight)) = models.next() else {
            return Err(WeightsError::Load("no models to average".into()));
        };
        let shapes = |m: &AcousticModel| {
            struct Shapes(Vec<Vec<usize>>);
            impl burn::module::ModuleVisitor for Shapes {
                fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                    self.0.push(param.val().dims().to_vec());
                }
            }
            let mut v = Shapes(Vec::new());
            m.visit(&mut v);
            v.0
        };
        let expected = shapes(&first);
        let mut sum = Sum(Vec::new(), 0, first_weight);
        first.visit(&mut sum);
        for (model, weight) in models {
            if shapes(&model) != expected {
                return Err(WeightsError::Load("models to average differ in shape".into()));
            }
            (sum.1, sum.2) = (0, weight);
            model.visit(&mut sum);
        }
        Ok(first.map(&mut Mean(sum.0, 0, total)))
    }

    fn cast_floats_to_f32(self) -> Self {
        struct ToF32;
        impl burn::module::ModuleMapper for ToF32 {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let (id, tensor, mapper) = param.consume();
                let tensor = if tensor.dtype() == burn::tensor::DType::F32 {
                    tensor
                } else {
                    tensor.cast(burn::tensor::DType::F32)
                };
                Param::from_mapped_value(id, tensor, mapper)
            }
        }
        self.map(&mut ToF32)
    }
}

/// f32 → f16 on save for every parameter of this model.
fn half_precision() -> HalfPrecisionAdapter {
    HalfPrecisionAdapter::new().with_module("DepthwiseConv1d")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deepened_model_computes_the_same_function_and_can_learn() {
        let device = Device::flex();
        let config = AcousticModelConfig::new().with_channels(24).with_blocks(2).with_kernel(5);
        let model = config.init(&device);
        let x = features(&device, 2, 41);
        let before = model.forward(x.clone());
        let deeper = model.deepened(4);
        assert_eq!(deeper.blocks(), 4);
        let diff: f32 = (deeper.forward(x.clone()) - before).abs().max().into_scalar();
        assert!(diff < 1e-6, "identity blocks changed the output by {diff}");
        // It saves and loads as a 4-block model.
        let bytes = deeper.to_bytes().unwrap();
        assert!(AcousticModel::from_bytes(&config.clone().with_blocks(4), bytes.clone(), &device).is_ok());
        assert!(
            AcousticModel::from_bytes(&config.clone().with_blocks(6), bytes.clone(), &device).is_err(),
            "6 refuses 4"
        );
        assert!(AcousticModel::from_bytes(&config, bytes, &device).is_err(), "a 2-block shape must refuse it");
        assert_eq!(deeper.deepened(1).blocks(), 4, "never removes blocks");
    }

    #[test]
    fn depthwise_matches_a_grouped_conv1d() {
        let device = Device::flex();
        let (channels, kernel, frames) = (6, 5, 17);
        let dw = DepthwiseConv1d::new(channels, kernel, &device);
        let mut conv = Conv1dConfig::new(channels, channels, kernel)
            .with_groups(channels)
            .with_padding(PaddingConfig1d::Explicit(kernel / 2, kernel / 2))
            .with_bias(false)
            .init(&device);
        // Conv1d weight [out, in/groups = 1, kernel] from our [kernel, channels].
        conv.weight = Param::from_tensor(dw.weight.val().swap_dims(0, 1).reshape([channels, 1, kernel]));
        let x = Tensor::<3>::random([2, frames, channels], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let ours = dw.forward(x.clone());
        let theirs = conv.forward(x.swap_dims(1, 2)).swap_dims(1, 2);
        let diff: f32 = (ours - theirs).abs().max().into_scalar();
        assert!(diff < 1e-5, "{diff}");
    }

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
    fn averaging_two_models_gives_the_mean_of_every_weight() {
        let device = Device::flex();
        let config = AcousticModelConfig::new().with_channels(8).with_blocks(2);
        let (a, b) = (config.init(&device), config.init(&device));
        let params = |m: &AcousticModel| {
            struct All(Vec<f32>);
            impl burn::module::ModuleVisitor for All {
                fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                    self.0.extend(param.val().into_data().try_to_vec::<f32>().unwrap());
                }
            }
            let mut all = All(Vec::new());
            m.visit(&mut all);
            all.0
        };
        let (pa, pb) = (params(&a), params(&b));
        assert_ne!(pa, pb);
        let weighted = params(&AcousticModel::weighted_average(vec![(a.clone(), 3.0), (b.clone(), 1.0)]).unwrap());
        for ((m, x), y) in weighted.iter().zip(&pa).zip(&pb) {
            assert!((m - (0.75 * x + 0.25 * y)).abs() < 1e-6, "{m} vs 3:1 of {x} and {y}");
        }
        assert!(AcousticModel::weighted_average(vec![(a.clone(), 1.0), (b.clone(), -1.0)]).is_err());
        let mean = params(&AcousticModel::average(vec![a, b]).unwrap());
        assert_eq!(mean.len(), pa.len());
        for ((m, x), y) in mean.iter().zip(&pa).zip(&pb) {
            assert!((m - (x + y) / 2.0).abs() < 1e-6, "{m} vs mean of {x} and {y}");
        }
        let wide = AcousticModelConfig::new().with_channels(16).with_blocks(2).init(&device);
        let small = config.init(&device);
        assert!(AcousticModel::average(vec![small, wide]).is_err());
        assert!(AcousticModel::average(Vec::new()).is_err());
    }

    #[test]
    fn f16_weights_are_half_the_size_and_load_as_f32() {
        let device = Device::flex();
        let config = AcousticModelConfig::new().with_channels(64).with_blocks(2);
        let model = config.init(&device);
        let (full, half) = (model.to_bytes().unwrap(), model.to_bytes_f16().unwrap());
        assert!(half.len() < full.len() * 6 / 10, "{} vs {} bytes", half.len(), full.len());
        let loaded = AcousticModel::from_bytes(&config, half, &device).unwrap();
        let x = features(&device, 1, 40);
        let out = loaded.forward(x.clone());
        assert_eq!(out.dtype(), burn::tensor::DType::F32);
        let diff: f32 = (model.forward(x) - out).abs().max().into_scalar();
        assert!(diff < 2e-2, "f16 rounding moved log-probs by {diff}");
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

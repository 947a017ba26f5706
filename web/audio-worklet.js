// hark capture worklet: runs on the audio rendering thread and hands raw mono
// samples at the device's native rate to the main thread in ~20 ms blocks.
// No resampling or feature extraction here: that is hark-dsp's job (Rust), so
// the browser and training share one front end.
class HarkCaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.blockFrames = Math.max(128, Math.round(sampleRate * 0.02));
    this.buffer = new Float32Array(this.blockFrames);
    this.filled = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const channels = input.length;
    const frames = input[0].length;
    for (let i = 0; i < frames; i++) {
      let sum = 0;
      for (let c = 0; c < channels; c++) sum += input[c][i];
      this.buffer[this.filled++] = sum / channels;
      if (this.filled === this.blockFrames) {
        this.port.postMessage({ sampleRate, samples: this.buffer }, [this.buffer.buffer]);
        this.buffer = new Float32Array(this.blockFrames);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("hark-capture", HarkCaptureProcessor);

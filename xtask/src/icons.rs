//! Draws hark's PWA icons (a microphone on the brand colour) as PNGs.
//!
//! Generated rather than hand-drawn so they stay reproducible and tiny;
//! shapes are signed-distance functions, anti-aliased by 4×4 supersampling.

use std::path::Path;

const BRAND: [f32; 3] = [0x1f as f32, 0x3a as f32, 0x5f as f32];
const GLYPH: [f32; 3] = [255.0, 255.0, 255.0];

pub fn write_all(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, size, maskable) in
        [("icon-192.png", 192, false), ("icon-512.png", 512, false), ("icon-512-maskable.png", 512, true)]
    {
        let path = dir.join(name);
        write_png(&path, size, &draw(size, maskable))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// RGBA pixels. A maskable icon fills the square and keeps the glyph inside
/// the central safe zone; the plain one is a rounded square.
fn draw(size: u32, maskable: bool) -> Vec<u8> {
    const SS: u32 = 4;
    let mut rgba = Vec::with_capacity((size * size * 4) as usize);
    let glyph_scale = if maskable { 0.62 } else { 0.8 };
    for y in 0..size {
        for x in 0..size {
            let (mut bg, mut fg) = (0.0f32, 0.0f32);
            for sy in 0..SS {
                for sx in 0..SS {
                    // Unit coordinates in [-1, 1], y up.
                    let u = ((x * SS + sx) as f32 + 0.5) / (size * SS) as f32 * 2.0 - 1.0;
                    let v = 1.0 - ((y * SS + sy) as f32 + 0.5) / (size * SS) as f32 * 2.0;
                    let inside_bg = maskable || rounded_square(u, v, 0.92, 0.28) <= 0.0;
                    if inside_bg {
                        bg += 1.0;
                        if microphone(u / glyph_scale, v / glyph_scale) <= 0.0 {
                            fg += 1.0;
                        }
                    }
                }
            }
            let n = (SS * SS) as f32;
            let (bg, fg) = (bg / n, fg / n);
            let alpha = bg;
            let mix = if bg > 0.0 { fg / bg } else { 0.0 };
            for c in 0..3 {
                rgba.push((BRAND[c] * (1.0 - mix) + GLYPH[c] * mix).round() as u8);
            }
            rgba.push((alpha * 255.0).round() as u8);
        }
    }
    rgba
}

fn rounded_square(u: f32, v: f32, half: f32, radius: f32) -> f32 {
    let qx = u.abs() - (half - radius);
    let qy = v.abs() - (half - radius);
    (qx.max(0.0).hypot(qy.max(0.0)) + qx.max(qy).min(0.0)) - radius
}

/// Capsule body, U-shaped holder, stem and base.
fn microphone(u: f32, v: f32) -> f32 {
    let capsule = segment(u, v, (0.0, 0.05), (0.0, 0.38)) - 0.2;
    // Holder: ring of radius 0.36 around (0, 0.12), lower half only.
    let ring = ((u.hypot(v - 0.12)) - 0.36).abs() - 0.055;
    let holder = if v < 0.12 { ring } else { segment(u.abs(), v, (0.36, 0.12), (0.36, 0.22)) - 0.055 };
    let stem = segment(u, v, (0.0, -0.24), (0.0, -0.46)) - 0.055;
    let base = segment(u, v, (-0.22, -0.48), (0.22, -0.48)) - 0.055;
    capsule.min(holder).min(stem).min(base)
}

fn segment(px: f32, py: f32, a: (f32, f32), b: (f32, f32)) -> f32 {
    let (pax, pay) = (px - a.0, py - a.1);
    let (bax, bay) = (b.0 - a.0, b.1 - a.1);
    let h = ((pax * bax + pay * bay) / (bax * bax + bay * bay)).clamp(0.0, 1.0);
    (pax - bax * h).hypot(pay - bay * h)
}

fn write_png(path: &Path, size: u32, rgba: &[u8]) -> anyhow::Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, size, size);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::High);
    encoder.write_header()?.write_image_data(rgba)?;
    Ok(())
}

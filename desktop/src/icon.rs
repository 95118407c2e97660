//! The tray glyph, drawn in code as RGBA: a white bird on its perch inside a disc whose colour
//! says the state (teal idle, blue working, amber attention, red error). macOS menu-bar icons
//! are templates (black and alpha only, the system tints them), so there the bird is black and
//! the state is a badge shape instead: none, a ring, a dot, a cross.

use crate::state::TrayState;

/// Edge length of the tray icon in pixels; panels scale it down.
pub const TRAY_ICON_SIZE: u32 = 64;
/// Samples per pixel along each axis, for smooth edges.
const SUPERSAMPLE: u32 = 4;

/// How the glyph is painted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Coloured disc, white bird (Linux, Windows).
    Colour,
    /// Black shapes on transparent, for a macOS template image.
    Template,
}

/// The style for this platform.
pub const fn platform_style() -> Style {
    if cfg!(target_os = "macos") {
        Style::Template
    } else {
        Style::Colour
    }
}

/// The state's colour, RGB.
pub fn state_colour(state: &TrayState) -> [u8; 3] {
    match state {
        TrayState::Idle => [0x1f, 0x6f, 0x78],
        TrayState::Working => [0x2f, 0x6f, 0xdf],
        TrayState::Attention => [0xe5, 0x94, 0x00],
        TrayState::Error { .. } => [0xd9, 0x3a, 0x3a],
    }
}

/// What covers a point of the unit square (y grows downwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paint {
    Clear,
    Disc,
    Bird,
}

fn in_ellipse(x: f64, y: f64, cx: f64, cy: f64, rx: f64, ry: f64) -> bool {
    let dx = (x - cx) / rx;
    let dy = (y - cy) / ry;
    dx * dx + dy * dy <= 1.0
}

fn in_triangle(p: (f64, f64), a: (f64, f64), b: (f64, f64), c: (f64, f64)) -> bool {
    let side = |p: (f64, f64), q: (f64, f64), r: (f64, f64)| {
        (p.0 - r.0) * (q.1 - r.1) - (q.0 - r.0) * (p.1 - r.1)
    };
    let d1 = side(p, a, b);
    let d2 = side(p, b, c);
    let d3 = side(p, c, a);
    let neg = d1 < 0.0 || d2 < 0.0 || d3 < 0.0;
    let pos = d1 > 0.0 || d2 > 0.0 || d3 > 0.0;
    !(neg && pos)
}

/// The bird and its branch.
fn in_bird(x: f64, y: f64) -> bool {
    let eye = in_ellipse(x, y, 0.655, 0.37, 0.035, 0.035);
    let body = in_ellipse(x, y, 0.44, 0.58, 0.25, 0.18);
    let head = in_ellipse(x, y, 0.62, 0.40, 0.14, 0.14);
    let beak = in_triangle((x, y), (0.73, 0.35), (0.88, 0.41), (0.73, 0.46));
    let branch = (0.16..=0.84).contains(&x) && (0.80..=0.86).contains(&y);
    (body || head || beak || branch) && !eye
}

fn colour_paint(x: f64, y: f64) -> Paint {
    if !in_ellipse(x, y, 0.5, 0.5, 0.5, 0.5) {
        Paint::Clear
    } else if in_bird(x, y) {
        Paint::Bird
    } else {
        Paint::Disc
    }
}

/// Template: the bird, plus the state's badge at the top left.
fn template_paint(state: &TrayState, x: f64, y: f64) -> Paint {
    let (bx, by, r) = (0.18, 0.18, 0.15);
    let badge = match state {
        TrayState::Idle => false,
        TrayState::Working => {
            in_ellipse(x, y, bx, by, r, r) && !in_ellipse(x, y, bx, by, r * 0.55, r * 0.55)
        }
        TrayState::Attention => in_ellipse(x, y, bx, by, r, r),
        TrayState::Error { .. } => {
            let (dx, dy) = (x - bx, y - by);
            let arm = dx.abs() <= r && dy.abs() <= r;
            arm && ((dx - dy).abs() <= 0.05 || (dx + dy).abs() <= 0.05)
        }
    };
    if badge || in_bird(x, y) {
        Paint::Bird
    } else {
        Paint::Clear
    }
}

/// The glyph for `state` as straight (not premultiplied) RGBA, `size`×`size`, row by row.
pub fn rgba(state: &TrayState, size: u32, style: Style) -> Vec<u8> {
    let disc = state_colour(state);
    let (bird, disc) = match style {
        Style::Colour => ([255, 255, 255], disc),
        Style::Template => ([0, 0, 0], [0, 0, 0]),
    };
    let n = SUPERSAMPLE;
    let mut out = Vec::with_capacity((size * size * 4) as usize);
    for py in 0..size {
        for px in 0..size {
            // Premultiplied sums over the samples.
            let (mut r, mut g, mut b, mut a) = (0.0, 0.0, 0.0, 0.0);
            for sy in 0..n {
                for sx in 0..n {
                    let x =
                        (f64::from(px) + (f64::from(sx) + 0.5) / f64::from(n)) / f64::from(size);
                    let y =
                        (f64::from(py) + (f64::from(sy) + 0.5) / f64::from(n)) / f64::from(size);
                    let paint = match style {
                        Style::Colour => colour_paint(x, y),
                        Style::Template => template_paint(state, x, y),
                    };
                    let rgb = match paint {
                        Paint::Clear => continue,
                        Paint::Disc => disc,
                        Paint::Bird => bird,
                    };
                    r += f64::from(rgb[0]);
                    g += f64::from(rgb[1]);
                    b += f64::from(rgb[2]);
                    a += 1.0;
                }
            }
            if a == 0.0 {
                out.extend_from_slice(&[0, 0, 0, 0]);
                continue;
            }
            let samples = f64::from(n * n);
            let to_u8 = |v: f64| v.round().clamp(0.0, 255.0) as u8;
            out.extend_from_slice(&[
                to_u8(r / a),
                to_u8(g / a),
                to_u8(b / a),
                to_u8(255.0 * a / samples),
            ]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(buf: &[u8], size: u32, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * size + x) * 4) as usize;
        [buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]
    }

    #[test]
    fn colour_icons_show_the_state_in_the_disc() {
        let s = TRAY_ICON_SIZE;
        let error = TrayState::Error { reason: "x".into() };
        for state in [
            TrayState::Idle,
            TrayState::Working,
            TrayState::Attention,
            error,
        ] {
            let buf = rgba(&state, s, Style::Colour);
            assert_eq!(buf.len(), (s * s * 4) as usize);
            // Corners are outside the disc.
            assert_eq!(px(&buf, s, 0, 0)[3], 0);
            // Just inside the left edge, level with the centre: the state's colour.
            let [r, g, b, a] = px(&buf, s, 3, s / 2);
            assert_eq!(a, 255);
            assert_eq!([r, g, b], state_colour(&state), "{state:?}");
            // The bird's body is white.
            assert_eq!(
                px(&buf, s, s * 44 / 100, s * 58 / 100),
                [255, 255, 255, 255]
            );
        }
    }

    #[test]
    fn states_look_different() {
        let s = 32;
        let idle = rgba(&TrayState::Idle, s, Style::Colour);
        let attention = rgba(&TrayState::Attention, s, Style::Colour);
        assert_ne!(idle, attention);
        let t_idle = rgba(&TrayState::Idle, s, Style::Template);
        let t_err = rgba(&TrayState::Error { reason: "r".into() }, s, Style::Template);
        let t_work = rgba(&TrayState::Working, s, Style::Template);
        assert_ne!(t_idle, t_err);
        assert_ne!(t_idle, t_work);
        assert_ne!(t_err, t_work);
    }

    #[test]
    fn templates_are_black_and_alpha_only() {
        let buf = rgba(&TrayState::Attention, 32, Style::Template);
        assert!(buf.chunks(4).all(|p| p[0] == 0 && p[1] == 0 && p[2] == 0));
        assert!(buf.chunks(4).any(|p| p[3] == 255));
        assert!(buf.chunks(4).any(|p| p[3] == 0));
    }
}

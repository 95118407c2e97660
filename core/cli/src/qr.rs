//! QR codes drawn with Unicode half blocks, so `perch devices setup-code` can show a code a
//! phone camera scans straight off the terminal.
//!
//! Two modules stack in one character cell (`▀`, `▄`, `█`, space), so a setup code fits in
//! 45 columns by 23 lines. A scanner needs dark modules on a light ground with a light
//! quiet zone around them; blocks are painted in the terminal's foreground colour and spaces
//! show its background, so which modules get blocks depends on the terminal's theme. We
//! draw for dark terminals, the common case; on a light theme the code shows inverted,
//! which many (not all) phone scanners still read.

use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};

/// Draws `text` as a QR code (error correction level M, quiet zone included) for a terminal
/// with a dark background, the common case: light modules and the quiet zone are painted as
/// blocks so the code reads dark-on-light. Every line has the same width; no trailing newline.
pub fn render(text: &str) -> anyhow::Result<String> {
    draw(text, true)
}

/// Draws the code, painting either the light modules (for dark terminals) or the dark ones
/// (for light terminals) as blocks.
fn draw(text: &str, paint_light_modules: bool) -> anyhow::Result<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| anyhow::anyhow!("cannot draw a QR code of {} bytes: {e}", text.len()))?;
    let (dark, light) = if paint_light_modules {
        (Dense1x2::Light, Dense1x2::Dark)
    } else {
        (Dense1x2::Dark, Dense1x2::Light)
    };
    Ok(code
        .render::<Dense1x2>()
        .dark_color(dark)
        .light_color(light)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The terminal background a drawing is meant for.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Background {
        Dark,
        Light,
    }

    fn render_for(text: &str, background: Background) -> anyhow::Result<String> {
        draw(text, background == Background::Dark)
    }

    /// A setup code of the length a host prints for one IPv4 address.
    const SETUP_CODE: &str = "PERCH1-041021-60N00G-NZM15G-9F7ATC-WTP5VD-MTRD9F-J1PB3C-8YYGZV-\
                              6FH55V-VZYN92-CE49B8-FS61Y4-XRGRPF-BGN53B-Y4K8TM-G24GZT";

    /// Reads the drawing back into rows of "painted" cells (a block half), two per line.
    fn painted_rows(drawing: &str) -> Vec<Vec<bool>> {
        let mut rows = Vec::new();
        for line in drawing.lines() {
            let (top, bottom): (Vec<bool>, Vec<bool>) = line
                .chars()
                .map(|c| match c {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    ' ' => (false, false),
                    other => panic!("unexpected character {other:?}"),
                })
                .unzip();
            rows.push(top);
            rows.push(bottom);
        }
        rows
    }

    /// What a camera sees: painted cells in the foreground colour, the rest and a wide margin
    /// in the background colour, each module `scale` pixels square; 0 is black.
    fn photograph(drawing: &str, background: Background, scale: usize) -> (usize, usize, Vec<u8>) {
        let rows = painted_rows(drawing);
        let (fg, bg) = match background {
            Background::Dark => (255u8, 0u8),
            Background::Light => (0, 255),
        };
        let margin = 6;
        let w = (rows[0].len() + 2 * margin) * scale;
        let h = (rows.len() + 2 * margin) * scale;
        let mut pixels = vec![bg; w * h];
        for (y, row) in rows.iter().enumerate() {
            for (x, &painted) in row.iter().enumerate() {
                if !painted {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        pixels[((y + margin) * scale + dy) * w + (x + margin) * scale + dx] = fg;
                    }
                }
            }
        }
        (w, h, pixels)
    }

    fn scan(drawing: &str, background: Background) -> String {
        let (w, h, pixels) = photograph(drawing, background, 4);
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| pixels[y * w + x]);
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1, "expected exactly one QR code");
        let (_meta, content) = grids[0].decode().expect("decodes");
        content
    }

    #[test]
    fn output_is_a_non_empty_rectangle_of_half_blocks() {
        let drawing = render(SETUP_CODE).unwrap();
        let widths: Vec<usize> = drawing.lines().map(|l| l.chars().count()).collect();
        assert!(!widths.is_empty());
        assert!(widths.iter().all(|&w| w == widths[0]), "{widths:?}");
        assert!(!drawing.ends_with('\n'));

        // An alphanumeric 118-character code at level M is version 5: 37 modules plus a
        // quiet zone of 4 on each side, two modules per line.
        let code = QrCode::with_error_correction_level(SETUP_CODE, EcLevel::M).unwrap();
        assert_eq!(code.version(), qrcode::Version::Normal(5));
        assert_eq!(widths[0], 37 + 8);
        assert_eq!(widths.len(), (37 + 8usize).div_ceil(2));
        // Small enough for an 80x24 terminal with room for the text beside or below it.
        assert!(widths[0] <= 80 && widths.len() <= 24);
    }

    #[test]
    fn drawing_matches_the_module_matrix_with_a_light_quiet_zone() {
        let code = QrCode::with_error_correction_level(SETUP_CODE, EcLevel::M).unwrap();
        let n = code.width();
        let colors = code.to_colors();
        for background in [Background::Dark, Background::Light] {
            let rows = painted_rows(&render_for(SETUP_CODE, background).unwrap());
            for (y, row) in rows.iter().enumerate().take(n + 8) {
                for (x, &painted) in row.iter().enumerate() {
                    let inside = (4..n + 4).contains(&x) && (4..n + 4).contains(&y);
                    let dark = inside && colors[(y - 4) * n + (x - 4)] == qrcode::Color::Dark;
                    // On a dark terminal light modules are painted; on a light one, dark ones.
                    let expected = match background {
                        Background::Dark => !dark,
                        Background::Light => dark,
                    };
                    assert_eq!(painted, expected, "{background:?} module ({x}, {y})");
                }
            }
        }
    }

    #[test]
    fn a_decoder_reads_the_setup_code_back_on_either_background() {
        for background in [Background::Dark, Background::Light] {
            let drawing = render_for(SETUP_CODE, background).unwrap();
            assert_eq!(scan(&drawing, background), SETUP_CODE, "{background:?}");
        }
    }

    #[test]
    fn text_too_long_for_any_qr_code_is_an_error() {
        let err = render(&"x".repeat(10_000)).unwrap_err();
        assert!(err.to_string().contains("10000 bytes"), "{err}");
    }
}

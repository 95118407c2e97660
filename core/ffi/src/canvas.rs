//! The Canvas on a phone: a foreign [`CanvasPresenter`] (a web view the app owns) answering
//! the canvas commands, all of which need the app on screen. The host's Canvas comes later;
//! the trait is here so apps can wire their surface now.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use perch_node::{CapabilityHandler, CommandError, parse_params};
use perch_protocol::ErrorCode;
use perch_protocol::canvas::{
    self as cv, CanvasJsonlParams, CanvasNavigateParams, CanvasPresentParams,
};
use serde_json::{Value, json};

use crate::error::ProviderError;
use crate::providers::{PROVIDER_TIMEOUT, call_foreign, provider_error};

/// The app's canvas surface (a WKWebView, an Android WebView) for the assistant's pages and
/// A2UI. Each call is made only while the app is on screen.
#[uniffi::export(foreign)]
pub trait CanvasPresenter: Send + Sync {
    /// Shows the canvas, at `url` when given (an http(s) page), else at its own page.
    fn present(&self, url: Option<String>) -> Result<(), ProviderError>;
    /// Hides the canvas.
    fn hide(&self) -> Result<(), ProviderError>;
    /// Loads `url` (an http(s) page) in the canvas.
    fn navigate(&self, url: String) -> Result<(), ProviderError>;
    /// Renders A2UI messages, one JSON object per line (already checked to parse).
    fn push_a2ui(&self, jsonl: String) -> Result<(), ProviderError>;
    /// Clears what A2UI rendered.
    fn reset_a2ui(&self) -> Result<(), ProviderError>;
}

/// The canvas commands through a [`CanvasPresenter`].
pub(crate) struct CanvasHandler(pub(crate) Arc<dyn CanvasPresenter>);

/// One checked canvas call, ready for the presenter.
enum Call {
    Present(Option<String>),
    Hide,
    Navigate(String),
    Push(String),
    Reset,
}

fn parse_call(command: &str, params: Value) -> Result<Call, CommandError> {
    let bad = |e: cv::CanvasParamsError| CommandError::invalid_request(format!("{command}: {e}"));
    Ok(match command {
        cv::CANVAS_PRESENT => {
            let p: CanvasPresentParams = parse_params(command, params)?;
            if let Some(url) = &p.url {
                cv::check_canvas_url(url).map_err(bad)?;
            }
            Call::Present(p.url)
        }
        cv::CANVAS_HIDE => Call::Hide,
        cv::CANVAS_NAVIGATE => {
            let p: CanvasNavigateParams = parse_params(command, params)?;
            cv::check_canvas_url(&p.url).map_err(bad)?;
            Call::Navigate(p.url)
        }
        cv::CANVAS_A2UI_PUSH_JSONL => {
            let p: CanvasJsonlParams = parse_params(command, params)?;
            cv::check_a2ui_jsonl(&p.jsonl).map_err(bad)?;
            Call::Push(p.jsonl)
        }
        cv::CANVAS_A2UI_RESET => Call::Reset,
        other => {
            return Err(CommandError::new(
                ErrorCode::CommandNotAllowed,
                format!("{other} is not a canvas command"),
            ));
        }
    })
}

impl CapabilityHandler for CanvasHandler {
    fn commands(&self) -> Vec<String> {
        cv::CANVAS_COMMANDS.iter().map(|c| c.to_string()).collect()
    }

    fn caps(&self) -> Vec<String> {
        vec!["canvas".into()]
    }

    fn needs_foreground(&self, _command: &str) -> bool {
        true
    }

    fn invoke(
        &self,
        command: &str,
        params: Value,
    ) -> BoxFuture<'static, Result<Value, CommandError>> {
        let presenter = self.0.clone();
        let call = parse_call(command, params);
        Box::pin(async move {
            let call = call?;
            call_foreign("canvas presenter", PROVIDER_TIMEOUT, move || match call {
                Call::Present(url) => presenter.present(url),
                Call::Hide => presenter.hide(),
                Call::Navigate(url) => presenter.navigate(url),
                Call::Push(jsonl) => presenter.push_a2ui(jsonl),
                Call::Reset => presenter.reset_a2ui(),
            })
            .await?
            .map_err(|e| provider_error(e, "CANVAS_PERMISSION_REQUIRED", ErrorCode::Unavailable))?;
            Ok(json!({"ok": true}))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Screen(Mutex<Vec<String>>);

    impl CanvasPresenter for Screen {
        fn present(&self, url: Option<String>) -> Result<(), ProviderError> {
            self.0.lock().unwrap().push(format!("present {url:?}"));
            Ok(())
        }
        fn hide(&self) -> Result<(), ProviderError> {
            self.0.lock().unwrap().push("hide".into());
            Ok(())
        }
        fn navigate(&self, url: String) -> Result<(), ProviderError> {
            self.0.lock().unwrap().push(format!("navigate {url}"));
            Ok(())
        }
        fn push_a2ui(&self, jsonl: String) -> Result<(), ProviderError> {
            self.0
                .lock()
                .unwrap()
                .push(format!("push {}", jsonl.lines().count()));
            Ok(())
        }
        fn reset_a2ui(&self) -> Result<(), ProviderError> {
            Err(ProviderError::Unavailable {
                reason: "no surface".into(),
            })
        }
    }

    #[tokio::test]
    async fn canvas_calls_reach_the_presenter_checked() {
        let screen = Arc::new(Screen::default());
        let h = CanvasHandler(screen.clone());
        assert!(h.needs_foreground(cv::CANVAS_HIDE));
        let ok = |c: &'static str, p: Value| h.invoke(c, p);
        ok(cv::CANVAS_PRESENT, json!({})).await.unwrap();
        ok(cv::CANVAS_NAVIGATE, json!({"url": "https://h.local/c"}))
            .await
            .unwrap();
        ok(cv::CANVAS_A2UI_PUSH_JSONL, json!({"jsonl": "{}\n{}"}))
            .await
            .unwrap();
        let e = ok(cv::CANVAS_NAVIGATE, json!({"url": "javascript:alert(1)"}))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let e = ok(cv::CANVAS_A2UI_PUSH_JSONL, json!({"jsonl": "{}\nnope"}))
            .await
            .unwrap_err();
        assert!(e.message.contains("line 2"), "{}", e.message);
        let e = ok(cv::CANVAS_A2UI_RESET, Value::Null).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert_eq!(
            *screen.0.lock().unwrap(),
            vec!["present None", "navigate https://h.local/c", "push 2"]
        );
    }
}

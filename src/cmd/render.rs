//! `omlboot render --out DIR`: every file of the plan, under DIR, with its mode.
use super::{build_plan, plan_facts, Inputs, Report};
use crate::error::Result;
use std::path::{Path, PathBuf};

pub struct Rendered {
    pub out: PathBuf,
    pub written: usize,
    pub unchanged: usize,
}

pub fn render(inputs: &Inputs, out: &Path) -> Result<Rendered> {
    let (mut cfg, units) = inputs.load()?;
    let facts = plan_facts(inputs, &cfg)?;
    let plan = build_plan(&mut cfg, &facts, &units, &[out, &inputs.root])?;
    let (written, unchanged) = crate::plan::render::render(&plan, out)?;
    Ok(Rendered {
        out: out.to_path_buf(),
        written,
        unchanged,
    })
}

impl Report for Rendered {
    fn table(&self) -> String {
        String::new()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "out": self.out, "written": self.written, "unchanged": self.unchanged })
    }
    fn notes(&self, _json: bool) -> Vec<String> {
        vec![format!(
            "rendered {} files under {} ({} written, {} unchanged)",
            self.written + self.unchanged,
            self.out.display(),
            self.written,
            self.unchanged
        )]
    }
}

//! stub
use super::Sink;
#[derive(Debug)]
pub struct MongoSpec;
impl MongoSpec {
    pub fn parse(_arg: &str) -> Result<MongoSpec, String> { Err("not built yet".into()) }
}
pub async fn run(_s: MongoSpec, _f: std::time::Duration, _sink: Sink) -> Result<(), String> { Err("not built yet".into()) }

//! stub
use super::Sink;
#[derive(Debug)]
pub struct ZmqSpec;
impl ZmqSpec {
    pub fn parse(_arg: &str) -> Result<ZmqSpec, String> { Err("not built yet".into()) }
}
pub async fn run(_s: ZmqSpec, _sink: Sink) -> Result<(), String> { Err("not built yet".into()) }

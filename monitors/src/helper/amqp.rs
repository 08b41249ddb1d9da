//! stub
use super::Sink;
#[derive(Debug)]
pub struct AmqpSpec;
impl AmqpSpec {
    pub fn parse(_arg: &str) -> Result<AmqpSpec, String> { Err("not built yet".into()) }
}
pub async fn run(_s: AmqpSpec, _sink: Sink) -> Result<(), String> { Err("not built yet".into()) }

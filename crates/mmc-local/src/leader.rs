//! Finding the MetaService leader of an HA cluster through etcd
//! (`local.etcd_endpoints`): one read of the election's leader record (its
//! address and term), checked like any input from the network.

use mmc_wire::{Error, ErrorKind, Result};
use std::time::Duration;

/// Longest one etcd read may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest leader address accepted.
const MAX_ADDR: usize = 255;

/// Reads the leader of one cluster's election from etcd.
pub struct LeaderResolver {
    endpoints: Vec<String>,
    cluster: String,
    name: String,
    client: tokio::sync::Mutex<Option<etcd_client::Client>>,
}

/// The leader as published: address and term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    pub addr: String,
    pub term: u64,
}

impl LeaderResolver {
    pub fn new(endpoints: Vec<String>, cluster: &str) -> Self {
        LeaderResolver {
            endpoints,
            cluster: cluster.to_string(),
            name: mmc_config::ha_election_name(cluster),
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// Where leaders are looked up, for messages.
    pub fn describe(&self) -> String {
        format!("cluster {:?} in etcd {:?}", self.cluster, self.endpoints)
    }

    /// The current leader; `None` when etcd names none.
    pub async fn resolve(&self) -> Result<Option<Leader>> {
        let mut c = self.client.lock().await;
        if c.is_none() {
            let opts = etcd_client::ConnectOptions::new().with_connect_timeout(RPC_TIMEOUT);
            let client = etcd_client::Client::connect(&self.endpoints, Some(opts))
                .await
                .map_err(|e| Error::caused_by(ErrorKind::NotConnectedMeta, format!("etcd {:?}", self.endpoints), e))?;
            *c = Some(client);
        }
        let Some(client) = c.as_ref() else {
            return Err(Error::new(ErrorKind::NotConnectedMeta, "etcd client missing"));
        };
        let mut ec = client.election_client();
        drop(c);
        match tokio::time::timeout(RPC_TIMEOUT, ec.leader(self.name.as_str())).await {
            Err(_) => Err(Error::new(ErrorKind::NotConnectedMeta, format!(
                "etcd {:?} did not answer within {RPC_TIMEOUT:?}",
                self.endpoints
            ))),
            Ok(Err(etcd_client::Error::GRpcStatus(s))) if s.message().contains("no leader") => Ok(None),
            Ok(Err(e)) => Err(Error::caused_by(ErrorKind::NotConnectedMeta, format!("etcd {:?}", self.endpoints), e)),
            Ok(Ok(resp)) => match resp.kv() {
                None => Ok(None),
                Some(kv) => parse(kv.value(), kv.create_revision()).map(Some),
            },
        }
    }
}

/// Checks a leader record read from etcd.
pub fn parse(value: &[u8], revision: i64) -> Result<Leader> {
    if value.is_empty() || value.len() > MAX_ADDR {
        return Err(Error::new(ErrorKind::NotConnectedMeta, format!(
            "etcd leader record: address of {} bytes (1 to {MAX_ADDR} expected)",
            value.len()
        )));
    }
    let addr = std::str::from_utf8(value)
        .map_err(|_| Error::new(ErrorKind::NotConnectedMeta, "etcd leader record: address is not UTF-8"))?
        .to_string();
    let term = u64::try_from(revision)
        .ok()
        .filter(|&t| t > 0)
        .ok_or_else(|| Error::new(ErrorKind::NotConnectedMeta, format!("etcd leader record: revision {revision} is not positive")))?;
    Ok(Leader { addr, term })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_leader_records_are_errors() {
        assert_eq!(
            parse(b"127.0.0.1:5000", 3).unwrap(),
            Leader {
                addr: "127.0.0.1:5000".into(),
                term: 3
            }
        );
        assert!(parse(b"", 3).is_err());
        assert!(parse(&[b'x'; 300], 3).is_err());
        assert!(parse(&[0xc3, 0x28], 3).is_err());
        assert!(parse(b"a:1", 0).is_err());
        assert!(parse(b"a:1", i64::MIN).is_err());
    }
}

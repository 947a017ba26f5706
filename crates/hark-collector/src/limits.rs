//! Rate limits: requests per client address and batches per install, each
//! a keyed GCRA limiter (`governor`). A refused request gets 429 and a
//! `Retry-After` that says when the next one would pass.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::settings::Limits;

/// What a limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Address,
    Install,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Address => "address",
            Scope::Install => "install",
        }
    }
}

/// The limiters, shared by every request.
pub struct RateLimits {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_install: Option<DefaultKeyedRateLimiter<String>>,
    forwarded_for: bool,
    clock: DefaultClock,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

impl RateLimits {
    pub fn new(limits: &Limits) -> Self {
        Self {
            per_ip: limiter(limits.per_ip_per_minute),
            per_install: limiter(limits.per_install_per_minute),
            forwarded_for: limits.forwarded_for,
            clock: DefaultClock::default(),
        }
    }

    /// The client's address: the peer's, or behind a trusted proxy the
    /// first of `X-Forwarded-For`.
    pub fn client(&self, peer: Option<&ConnectInfo<SocketAddr>>, headers: &HeaderMap) -> Option<IpAddr> {
        let forwarded = || {
            let header = headers.get("x-forwarded-for")?.to_str().ok()?;
            header.split(',').next()?.trim().parse().ok()
        };
        if self.forwarded_for { forwarded() } else { None }.or(peer.map(|p| p.0.ip()))
    }

    /// `Err(wait)` when `address` is over its limit.
    pub fn check_address(&self, address: Option<IpAddr>) -> Result<(), Duration> {
        match (&self.per_ip, address) {
            (Some(limiter), Some(ip)) => limiter.check_key(&ip).map_err(|t| t.wait_time_from(self.clock.now())),
            _ => Ok(()),
        }
    }

    /// `Err(wait)` when `install` is over its limit.
    pub fn check_install(&self, install: &str) -> Result<(), Duration> {
        match &self.per_install {
            Some(limiter) => limiter.check_key(&install.to_owned()).map_err(|t| t.wait_time_from(self.clock.now())),
            None => Ok(()),
        }
    }

    /// Forgets keys whose limits are back to full (bounds the memory).
    pub fn forget_idle(&self) {
        if let Some(l) = &self.per_ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.per_install {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_past_the_quota_is_told_how_long_to_wait() {
        let limits = RateLimits::new(&Limits { per_install_per_minute: 2, ..Limits::default() });
        assert!(limits.check_install("a").is_ok());
        assert!(limits.check_install("a").is_ok());
        let wait = limits.check_install("a").unwrap_err();
        assert!(wait > Duration::from_secs(20) && wait <= Duration::from_secs(30), "{wait:?}");
        assert!(limits.check_install("b").is_ok(), "each install has its own quota");
        let off = RateLimits::new(&Limits { per_install_per_minute: 0, ..Limits::default() });
        assert!((0..1000).all(|_| off.check_install("a").is_ok()), "0 turns the limit off");
    }

    #[test]
    fn the_forwarded_address_counts_only_behind_a_trusted_proxy() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.7, 10.0.0.1".parse().unwrap());
        let peer = ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9)));
        let direct = RateLimits::new(&Limits::default());
        assert_eq!(direct.client(Some(&peer), &headers), Some(IpAddr::from([127, 0, 0, 1])));
        let proxied = RateLimits::new(&Limits { forwarded_for: true, ..Limits::default() });
        assert_eq!(proxied.client(Some(&peer), &headers), Some(IpAddr::from([203, 0, 113, 7])));
    }
}

//! IP network functions: `cidrhost`, `cidrnetmask`, `cidrsubnet`, `cidrsubnets`.
//!
//! Addresses are handled as `u128` with an address width of 32 (IPv4) or 128 (IPv6) bits.

use super::{int_arg, string_arg};
use hcl::Value;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A parsed CIDR prefix, with the host bits of the address cleared.
#[derive(Debug, Clone, Copy)]
struct Cidr {
    network: u128,
    bits: u32,
    prefix: u32,
}

impl Cidr {
    /// Inclusive last address of the prefix.
    fn last(&self) -> u128 {
        self.network | host_mask(self.bits, self.prefix)
    }
}

/// Mask of the host part for a prefix of `prefix` bits in an address of `bits` bits.
fn host_mask(bits: u32, prefix: u32) -> u128 {
    let host_bits = bits.saturating_sub(prefix);
    if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

fn parse_cidr(f: &str, s: &str) -> Result<Cidr, String> {
    let invalid = || format!("{f}: invalid CIDR address {s:?}");
    let (addr, prefix) = s.split_once('/').ok_or_else(invalid)?;
    let (network, bits) = if let Ok(v4) = addr.parse::<Ipv4Addr>() {
        (u128::from(u32::from(v4)), 32)
    } else if let Ok(v6) = addr.parse::<Ipv6Addr>() {
        (u128::from(v6), 128)
    } else {
        return Err(invalid());
    };
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let prefix: u32 = prefix.parse().map_err(|_| invalid())?;
    if prefix > bits {
        return Err(invalid());
    }
    let network = network & !host_mask(bits, prefix);
    Ok(Cidr {
        network,
        bits,
        prefix,
    })
}

fn format_addr(addr: u128, bits: u32) -> String {
    if bits == 32 {
        Ipv4Addr::from(u32::try_from(addr).unwrap_or(0)).to_string()
    } else {
        Ipv6Addr::from(addr).to_string()
    }
}

/// Number of addresses in a block of `host_bits` host bits, `None` when it is 2^128.
fn block_size(host_bits: u32) -> Option<u128> {
    1u128.checked_shl(host_bits)
}

pub(super) fn cidrhost(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("cidrhost", args, 0)?;
    let hostnum = int_arg("cidrhost", args, 1)?;
    let cidr = parse_cidr("cidrhost", &s)?;
    let host_bits = cidr.bits - cidr.prefix;
    let too_big = || {
        format!(
            "cidrhost: prefix of {} bits cannot accommodate a host numbered {hostnum}",
            cidr.prefix
        )
    };
    let mag = u128::from(hostnum.unsigned_abs());
    let offset = match block_size(host_bits) {
        None => {
            if hostnum >= 0 {
                mag
            } else {
                // 2^128 - |n|
                (u128::MAX - mag).wrapping_add(1)
            }
        }
        Some(size) => {
            if hostnum >= 0 {
                if mag >= size {
                    return Err(too_big());
                }
                mag
            } else {
                if mag > size {
                    return Err(too_big());
                }
                size - mag
            }
        }
    };
    Ok(Value::String(format_addr(cidr.network | offset, cidr.bits)))
}

pub(super) fn cidrnetmask(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("cidrnetmask", args, 0)?;
    let cidr = parse_cidr("cidrnetmask", &s)?;
    if cidr.bits != 32 {
        return Err("cidrnetmask: IPv6 addresses cannot have a netmask".to_string());
    }
    let mask = !host_mask(32, cidr.prefix) & u128::from(u32::MAX);
    Ok(Value::String(format_addr(mask, 32)))
}

pub(super) fn cidrsubnet(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("cidrsubnet", args, 0)?;
    let newbits = int_arg("cidrsubnet", args, 1)?;
    let netnum = int_arg("cidrsubnet", args, 2)?;
    let cidr = parse_cidr("cidrsubnet", &s)?;
    if newbits < 0 {
        return Err(format!("cidrsubnet: newbits must not be negative, got {newbits}"));
    }
    let new_prefix = u32::try_from(newbits)
        .ok()
        .and_then(|n| n.checked_add(cidr.prefix))
        .filter(|p| *p <= cidr.bits)
        .ok_or_else(|| {
            format!(
                "cidrsubnet: insufficient address space to extend prefix of {} by {newbits}",
                cidr.prefix
            )
        })?;
    if netnum < 0 {
        return Err(format!("cidrsubnet: netnum must not be negative, got {netnum}"));
    }
    let netnum_u = u128::from(netnum.unsigned_abs());
    let extension_bits = new_prefix - cidr.prefix;
    if let Some(count) = block_size(extension_bits)
        && netnum_u >= count
    {
        return Err(format!(
            "cidrsubnet: prefix extension of {newbits} bits does not accommodate a subnet numbered {netnum}"
        ));
    }
    let shift = cidr.bits - new_prefix;
    let subnet = netnum_u.checked_shl(shift).unwrap_or(0);
    Ok(Value::String(format!(
        "{}/{new_prefix}",
        format_addr(cidr.network | subnet, cidr.bits)
    )))
}

/// `cidrsubnets(prefix, newbits...)`: consecutive, aligned subnets allocated from the start of
/// the prefix.
pub(super) fn cidrsubnets(args: &[Value]) -> Result<Value, String> {
    let s = string_arg("cidrsubnets", args, 0)?;
    let cidr = parse_cidr("cidrsubnets", &s)?;
    let last = cidr.last();
    // Next free address; `None` once the whole address space has been used.
    let mut cursor = Some(cidr.network);
    let mut out = Vec::new();
    let mut previous: Option<String> = None;
    for i in 1..args.len() {
        let newbits = int_arg("cidrsubnets", args, i)?;
        if newbits < 1 {
            return Err(format!(
                "cidrsubnets: argument {} must extend the prefix by at least one bit, got {newbits}",
                i + 1
            ));
        }
        let length = u32::try_from(newbits)
            .ok()
            .and_then(|n| n.checked_add(cidr.prefix))
            .filter(|l| *l <= cidr.bits)
            .ok_or_else(|| {
                format!(
                    "cidrsubnets: argument {} would extend the prefix to more than {} bits",
                    i + 1,
                    cidr.bits
                )
            })?;
        let host_bits = cidr.bits - length;
        // length >= 1, so host_bits <= 127 and the block size fits.
        let size = block_size(host_bits).unwrap_or(u128::MAX);
        let no_space = || {
            let after = previous
                .as_ref()
                .map_or_else(String::new, |p| format!(" after {p}"));
            format!(
                "cidrsubnets: not enough remaining address space for a subnet with a prefix of {length} bits{after}"
            )
        };
        let start = cursor
            .and_then(|c| {
                let rem = c % size;
                if rem == 0 {
                    Some(c)
                } else {
                    c.checked_add(size - rem)
                }
            })
            .filter(|start| *start <= last)
            .ok_or_else(no_space)?;
        let end = start + (size - 1);
        if end > last {
            return Err(no_space());
        }
        let text = format!("{}/{length}", format_addr(start, cidr.bits));
        out.push(Value::String(text.clone()));
        previous = Some(text);
        cursor = end.checked_add(1);
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{err, ok, v};

    #[test]
    fn cidrhost_cases() {
        assert_eq!(ok(r#"cidrhost("10.12.112.0/20", 16)"#), v(r#""10.12.112.16""#));
        assert_eq!(ok(r#"cidrhost("10.12.112.0/20", 268)"#), v(r#""10.12.113.12""#));
        assert_eq!(ok(r#"cidrhost("10.0.0.0/24", -1)"#), v(r#""10.0.0.255""#));
        assert_eq!(
            ok(r#"cidrhost("fd00:fd12:3456:7890:00a2::/72", 34)"#),
            v(r#""fd00:fd12:3456:7890::22""#)
        );
        err(
            r#"cidrhost("10.0.0.0/24", 256)"#,
            "cidrhost: prefix of 24 bits cannot accommodate a host numbered 256",
        );
        err(
            r#"cidrhost("10.0.0.0/24", -257)"#,
            "cannot accommodate a host numbered -257",
        );
        err(
            r#"cidrhost("10.0.0/24", 1)"#,
            "cidrhost: invalid CIDR address \"10.0.0/24\"",
        );
        err(r#"cidrhost("10.0.0.0/33", 1)"#, "invalid CIDR address");
    }

    #[test]
    fn cidrnetmask_cases() {
        assert_eq!(ok(r#"cidrnetmask("172.16.0.0/12")"#), v(r#""255.240.0.0""#));
        assert_eq!(ok(r#"cidrnetmask("0.0.0.0/0")"#), v(r#""0.0.0.0""#));
        assert_eq!(ok(r#"cidrnetmask("1.2.3.4/32")"#), v(r#""255.255.255.255""#));
        err(
            r#"cidrnetmask("fd00::/8")"#,
            "IPv6 addresses cannot have a netmask",
        );
        err(r#"cidrnetmask("nope")"#, "invalid CIDR address");
    }

    #[test]
    fn cidrsubnet_cases() {
        assert_eq!(
            ok(r#"cidrsubnet("172.16.0.0/12", 4, 2)"#),
            v(r#""172.18.0.0/16""#)
        );
        assert_eq!(ok(r#"cidrsubnet("10.1.2.0/24", 4, 15)"#), v(r#""10.1.2.240/28""#));
        assert_eq!(
            ok(r#"cidrsubnet("fd00:fd12:3456:7890::/56", 16, 162)"#),
            v(r#""fd00:fd12:3456:7800:a200::/72""#)
        );
        err(
            r#"cidrsubnet("10.1.2.0/24", 4, 16)"#,
            "prefix extension of 4 bits does not accommodate a subnet numbered 16",
        );
        err(
            r#"cidrsubnet("10.1.2.0/24", 9, 0)"#,
            "insufficient address space to extend prefix of 24 by 9",
        );
        err(
            r#"cidrsubnet("10.1.2.0/24", -1, 0)"#,
            "newbits must not be negative",
        );
    }

    #[test]
    fn cidrsubnets_cases() {
        assert_eq!(
            ok(r#"cidrsubnets("10.1.0.0/16", 4, 4, 8, 4)"#),
            v(r#"["10.1.0.0/20", "10.1.16.0/20", "10.1.32.0/24", "10.1.48.0/20"]"#)
        );
        assert_eq!(
            ok(r#"cidrsubnets("fd00:fd12:3456:7890::/56", 16, 16, 16, 32)"#),
            v(
                r#"["fd00:fd12:3456:7800::/72", "fd00:fd12:3456:7800:100::/72", "fd00:fd12:3456:7800:200::/72", "fd00:fd12:3456:7800:300::/88"]"#
            )
        );
        assert_eq!(ok(r#"cidrsubnets("10.0.0.0/8")"#), v("[]"));
        err(
            r#"cidrsubnets("10.0.0.0/24", 1, 1, 1)"#,
            "not enough remaining address space for a subnet with a prefix of 25 bits after 10.0.0.128/25",
        );
        err(
            r#"cidrsubnets("10.0.0.0/24", 0)"#,
            "must extend the prefix by at least one bit",
        );
        err(
            r#"cidrsubnets("10.0.0.0/24", 9)"#,
            "would extend the prefix to more than 32 bits",
        );
    }
}

//! The Mooncake phase: Mooncake Store driven through its Python client
//! with the same loops as MemCache, on the same host and across the two
//! network namespaces.

use super::clients::{batch_rows, put_get_n};
use super::mooncake_services::{py_clients, McCluster, McServices, MooncakeSetup};
use super::scale::scale_row;
use super::{cmd, cross_batch_sizes, layered, with_batch, Shape};
use crate::netns::Pair;
use crate::procs::{aggregate, measure_all, run_all, Proc};
use crate::report::Row;
use crate::rows::Kind;
use crate::worker::BLOCK_BYTES;
use crate::workloads::{progress, slots_for, tag, SMALL_KEYS};

/// Mooncake Store (master and `providers` memory-provider processes in
/// namespace A, TCP transport) driven through its Python client with the
/// same loops: clients in A for the same-host figures, in B for the
/// cross-host ones.
pub fn mooncake(
    shape: &Shape,
    ns: &Pair,
    mc: &MooncakeSetup,
    same_host: bool,
    cross_host: bool,
    notes: &mut Vec<String>,
) -> Result<Vec<Row>, String> {
    let (services, cl) = McServices::start(shape, ns, mc)?;
    let mut rows = Vec::new();
    if same_host {
        rows.extend(mooncake_same_host(shape, ns, &cl)?);
    }
    if cross_host {
        rows.extend(mooncake_cross_host(shape, ns, &cl)?);
    }
    notes.push(services.note(shape, ns, &cl));
    Ok(rows)
}

/// Same host: Python clients in namespace A, one for the size sweep, the
/// batches and the layered block, N for the client scaling.
fn mooncake_same_host(shape: &Shape, ns: &Pair, cl: &McCluster<'_>) -> Result<Vec<Row>, String> {
    let mut ps = py_clients(shape, cl, shape.max_clients(), (&ns.a, &ns.ip_a), "mooncake-client")?;
    let mut rows = mooncake_sizes(shape, &mut ps)?;
    rows.extend(mooncake_batches(shape, &mut ps)?);
    rows.extend(mooncake_layers(shape, &mut ps)?);
    rows.extend(mooncake_scale(shape, &mut ps)?);
    Ok(rows)
}

/// put_from / get_into of every sweep size with one client.
fn mooncake_sizes(shape: &Shape, ps: &mut [Proc]) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for &size in &shape.sizes {
        let t = tag(size);
        progress(&format!("mooncake: put_from / get_into {t}"));
        let (p, g) = put_get_n(ps, 1, size, shape, &format!("m{t}"))?;
        rows.push(Row::new(Kind::MooncakePut.size(size), "shm", "mooncake put_from", size, 1, p).group(size));
        rows.push(Row::new(Kind::MooncakeGet.size(size), "shm", "mooncake get_into", size, 1, g).group(size));
    }
    Ok(rows)
}

/// batch_put_from / batch_get_into / batch_is_exist of every batch shape.
fn mooncake_batches(shape: &Shape, ps: &mut [Proc]) -> Result<Vec<Row>, String> {
    let budget = shape.budget;
    let mut rows = Vec::new();
    for &value in &shape.batch_values {
        let t = tag(value);
        let batch = shape.batch_keys;
        let n = (SMALL_KEYS / batch).max(1) * batch;
        progress(&format!(
            "mooncake: batch_put_from / batch_get_into / batch_is_exist {batch} x {t}"
        ));
        let one = &mut ps[..1];
        let put = aggregate(&measure_all(
            one,
            &with_batch(cmd("put_batch", value, n, &format!("mb{t}")), batch),
            budget,
        )?);
        run_all(one, &cmd("fill", value, n, &format!("mbg{t}")), false)?;
        let get = aggregate(&measure_all(
            one,
            &with_batch(cmd("get_batch", value, n, ""), batch),
            budget,
        )?);
        let ex = aggregate(&measure_all(
            one,
            &with_batch(cmd("exist_batch", value, n, ""), batch),
            budget,
        )?);
        run_all(one, &cmd("clear", 0, 0, ""), false)?;
        let b = batch as u64;
        rows.push(
            Row::new(
                Kind::MooncakePutB.size(value),
                "batch",
                format!("mooncake batch_put_from x{batch}"),
                value,
                b,
                put,
            )
            .group(value),
        );
        rows.push(
            Row::new(
                Kind::MooncakeGetB.size(value),
                "batch",
                format!("mooncake batch_get_into x{batch}"),
                value,
                b,
                get,
            )
            .group(value),
        );
        rows.push(
            Row::new(
                Kind::MooncakeExistB.size(value),
                "batch",
                format!("mooncake batch_is_exist x{batch}"),
                0,
                b,
                ex,
            )
            .group(value),
        );
    }
    Ok(rows)
}

/// The layered block (batch_*_multi_buffers) with one client.
fn mooncake_layers(shape: &Shape, ps: &mut [Proc]) -> Result<Vec<Row>, String> {
    let budget = shape.budget;
    let mut rows = Vec::new();
    progress("mooncake: layered block (batch_put_from_multi_buffers / batch_get_into_multi_buffers)");
    {
        let one = &mut ps[..1];
        let slots = slots_for(shape.ws, BLOCK_BYTES);
        let put = aggregate(&measure_all(one, &layered(cmd("put", 0, slots, "mlp")), budget)?);
        run_all(one, &layered(cmd("fill", 0, slots, "mlg")), false)?;
        let get = aggregate(&measure_all(one, &layered(cmd("get", 0, slots, "")), budget)?);
        run_all(one, &cmd("clear", 0, 0, ""), false)?;
        rows.push(Row::new(
            Kind::LayersMooncakePut.one(),
            "layers",
            "mooncake put (multi buffers)",
            BLOCK_BYTES,
            1,
            put,
        ));
        rows.push(Row::new(
            Kind::LayersMooncakeGet.one(),
            "layers",
            "mooncake get (multi buffers)",
            BLOCK_BYTES,
            1,
            get,
        ));
    }
    Ok(rows)
}

/// N client processes, `shape.scale_size` objects.
fn mooncake_scale(shape: &Shape, ps: &mut [Proc]) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let size = shape.scale_size;
    let t = tag(size);
    for &n in &shape.clients {
        progress(&format!("mooncake: {n} client processes {t}"));
        let (p, g) = put_get_n(ps, n, size, shape, &format!("mn{n}"))?;
        rows.push(scale_row(Kind::ScaleMooncakePut, "mooncake put_from", n, size, p));
        rows.push(scale_row(Kind::ScaleMooncakeGet, "mooncake get_into", n, size, g));
    }
    Ok(rows)
}

/// Cross host: Python clients in namespace B; every cross size (and its
/// batch where it fits), then N > 1 clients.
fn mooncake_cross_host(shape: &Shape, ns: &Pair, cl: &McCluster<'_>) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let batched = cross_batch_sizes(shape);
    let b = shape.cross_batch_keys;
    let mut ps = py_clients(shape, cl, shape.max_clients(), (&ns.b, &ns.ip_b), "mooncake-xclient")?;
    for &size in &shape.cross_sizes {
        let t = tag(size);
        progress(&format!("mooncake cross-host: put_from / get_into {t}"));
        let (p, g) = put_get_n(&mut ps, 1, size, shape, &format!("mx{t}"))?;
        rows.push(
            Row::new(
                Kind::CrossMooncakePut.size(size),
                "cross",
                "mooncake put_from",
                size,
                1,
                p,
            )
            .group(size),
        );
        rows.push(
            Row::new(
                Kind::CrossMooncakeGet.size(size),
                "cross",
                "mooncake get_into",
                size,
                1,
                g,
            )
            .group(size),
        );
        if batched.contains(&size) {
            progress(&format!(
                "mooncake cross-host: batch_put_from / batch_get_into {b} x {t}"
            ));
            let (p, g) = batch_rows(
                &mut ps,
                size,
                shape,
                &format!("mxb{t}"),
                (Kind::CrossMooncakePutB, Kind::CrossMooncakeGetB),
                ("mooncake batch_put_from", "mooncake batch_get_into"),
            )?;
            rows.extend([p, g]);
        }
    }
    let size = shape.scale_size;
    let t = tag(size);
    for &n in shape.clients.iter().filter(|&&n| n > 1) {
        progress(&format!("mooncake cross-host: {n} client processes {t}"));
        let (p, g) = put_get_n(&mut ps, n, size, shape, &format!("mxn{n}"))?;
        let grp = (1u64 << 40) + n as u64;
        rows.push(
            Row::new(
                Kind::CrossMooncakePut.procs(n),
                "cross",
                format!("mooncake put_from, {n} procs"),
                size,
                1,
                p,
            )
            .group(grp),
        );
        rows.push(
            Row::new(
                Kind::CrossMooncakeGet.procs(n),
                "cross",
                format!("mooncake get_into, {n} procs"),
                size,
                1,
                g,
            )
            .group(grp),
        );
    }
    Ok(rows)
}

//! Writing encoded frames to any async byte stream (a TLS stream, where
//! [`FrameWriter`](crate::frame_writer::FrameWriter)'s direct `try_write`
//! on the socket is impossible).
//!
//! Senders queue whole frames without waiting; one task writes them in
//! order, coalescing whatever has queued meanwhile into one flush (for TLS:
//! fewer records and fewer system calls). A failed write ends the task, and
//! later sends fail. Dropping every sender flushes and shuts the stream.

use std::io;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

/// Buffer the writer task coalesces frames into before flushing.
const COALESCE: usize = 64 * 1024;

#[derive(Clone)]
pub struct StreamWriter {
    tx: mpsc::UnboundedSender<Vec<u8>>,
}

impl StreamWriter {
    /// Starts the writer task for `w` on the current runtime.
    pub fn spawn<W>(w: W) -> (Self, tokio::task::JoinHandle<()>)
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            // The error is seen by the reader of the same stream, and by
            // later senders as a closed queue.
            let _ = write_loop(w, rx).await;
        });
        (StreamWriter { tx }, task)
    }

    /// Queues `buf` (a whole frame) for writing.
    pub fn send(&self, buf: Vec<u8>) -> io::Result<()> {
        self.tx
            .send(buf)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "connection writer stopped"))
    }

    /// True once the writer task has stopped (a write failed).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(w: W, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(COALESCE, w);
    while let Some(buf) = rx.recv().await {
        w.write_all(&buf).await?;
        while let Ok(buf) = rx.try_recv() {
            w.write_all(&buf).await?;
        }
        w.flush().await?;
    }
    w.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{self, FrameKind};

    #[tokio::test]
    async fn frames_arrive_in_order_and_drop_closes() {
        let (a, mut b) = tokio::io::duplex(256);
        let (w, task) = StreamWriter::spawn(a);
        for i in 0..100u64 {
            w.send(frame::encode(FrameKind::Response, i, &vec![i as u8; 300]).unwrap())
                .unwrap();
        }
        drop(w);
        for i in 0..100u64 {
            let f = frame::read_frame(&mut b).await.unwrap().unwrap();
            assert_eq!(f.id, i);
            assert_eq!(f.decode::<Vec<u8>>().unwrap(), vec![i as u8; 300]);
        }
        assert!(frame::read_frame(&mut b).await.unwrap().is_none());
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_dead_peer_stops_the_writer() {
        let (a, b) = tokio::io::duplex(64);
        drop(b);
        let (w, task) = StreamWriter::spawn(a);
        let _ = w.send(vec![0; 1000]);
        task.await.unwrap();
        assert!(w.is_closed());
        assert!(w.send(vec![1]).is_err());
    }
}

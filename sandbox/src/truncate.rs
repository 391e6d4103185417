//! Output that may be huge, held in bounded memory: the head and the tail are kept, the middle is counted and
//! replaced by a marker that says how much was cut.

use std::collections::VecDeque;

/// Keeps the first `head_cap` and the last `tail_cap` bytes of a stream and counts the rest.
#[derive(Debug)]
pub struct HeadTail {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_cap: usize,
    tail_cap: usize,
    total_bytes: u64,
    total_lines: u64,
    dropped_bytes: u64,
    dropped_lines: u64,
}

impl HeadTail {
    /// A buffer that keeps at most `max_bytes` (half head, half tail).
    pub fn new(max_bytes: usize) -> Self {
        let head_cap = max_bytes / 2;
        Self {
            head: Vec::new(),
            tail: VecDeque::new(),
            head_cap,
            tail_cap: max_bytes - head_cap,
            total_bytes: 0,
            total_lines: 0,
            dropped_bytes: 0,
            dropped_lines: 0,
        }
    }

    /// Appends bytes.
    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total_bytes += bytes.len() as u64;
        self.total_lines += count_lines(bytes);
        let room = self.head_cap.saturating_sub(self.head.len());
        let to_head = room.min(bytes.len());
        self.head.extend_from_slice(&bytes[..to_head]);
        bytes = &bytes[to_head..];
        if bytes.is_empty() {
            return;
        }
        if bytes.len() >= self.tail_cap {
            let cut = bytes.len() - self.tail_cap;
            self.drop_bytes(&bytes[..cut]);
            let evicted: Vec<u8> = self.tail.drain(..).collect();
            self.drop_bytes(&evicted);
            self.tail.extend(&bytes[cut..]);
            return;
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.tail_cap);
        if overflow > 0 {
            let evicted: Vec<u8> = self.tail.drain(..overflow).collect();
            self.drop_bytes(&evicted);
        }
        self.tail.extend(bytes);
    }

    fn drop_bytes(&mut self, bytes: &[u8]) {
        self.dropped_bytes += bytes.len() as u64;
        self.dropped_lines += count_lines(bytes);
    }

    /// Whether anything was cut.
    pub fn truncated(&self) -> bool {
        self.dropped_bytes > 0
    }

    /// Every byte pushed so far.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// The kept text, with a marker where the middle was cut. Invalid UTF-8 becomes U+FFFD.
    pub fn render(&self) -> String {
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        let head = String::from_utf8_lossy(&self.head);
        let tail = String::from_utf8_lossy(&tail);
        if !self.truncated() {
            return format!("{head}{tail}");
        }
        format!(
            "{head}\n\n[... output truncated: {} bytes ({} newlines) omitted from the middle; {} bytes and {} \
             newlines in total; the first and last {} bytes are shown ...]\n\n{tail}",
            self.dropped_bytes, self.dropped_lines, self.total_bytes, self.total_lines, self.head_cap
        )
    }
}

fn count_lines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// `text` cut to about `max_bytes`, keeping its head and tail.
pub fn limit_text(text: String, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text;
    }
    let mut buffer = HeadTail::new(max_bytes);
    buffer.push(text.as_bytes());
    buffer.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole() {
        let mut b = HeadTail::new(100);
        b.push(b"hello\n");
        b.push(b"world\n");
        assert!(!b.truncated());
        assert_eq!(b.render(), "hello\nworld\n");
    }

    #[test]
    fn long_output_keeps_head_and_tail_and_counts_the_middle() {
        let mut b = HeadTail::new(40);
        for i in 0..1000 {
            b.push(format!("line {i}\n").as_bytes());
        }
        let text = b.render();
        assert!(text.starts_with("line 0\nline 1\n"), "{text}");
        assert!(text.ends_with("line 999\n"), "{text}");
        assert!(text.contains("output truncated"), "{text}");
        assert!(text.contains("1000 newlines in total"), "{text}");
        assert_eq!(
            b.total_bytes(),
            (0..1000).map(|i| format!("line {i}\n").len() as u64).sum::<u64>()
        );
    }

    #[test]
    fn one_huge_push_is_cut_the_same_way() {
        let mut b = HeadTail::new(10);
        b.push(&[b'a'; 5]);
        b.push(&[b'b'; 1000]);
        b.push(b"xyz");
        let text = b.render();
        assert!(
            text.starts_with("aaaaa\n\n[... output truncated: 998 bytes"),
            "{text}"
        );
        assert!(text.ends_with("bbxyz"), "{text}");
    }

    #[test]
    fn limit_text_leaves_short_text_alone() {
        assert_eq!(limit_text("abc".into(), 10), "abc");
        assert!(limit_text("x".repeat(100), 10).contains("truncated"));
    }
}

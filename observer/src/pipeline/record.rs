//! Raw ring-buffer records written to a file (`--record`), and read back for the replay
//! benchmark. The file is a magic line and then, per record, its length as a little-endian
//! u32 followed by its bytes, exactly as the kernel wrote them.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use thiserror::Error;

const MAGIC: &[u8; 8] = b"GOREC01\n";

#[derive(Debug, Error)]
pub enum RecordError {
    #[error("creating recording {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing recording {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading recording {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a gunicorn-observer recording")]
    NotARecording { path: PathBuf },
    #[error("recording {path} ends inside a record")]
    Truncated { path: PathBuf },
}

/// Appends every drained record to a file.
pub struct Recorder {
    path: PathBuf,
    out: BufWriter<File>,
    records: u64,
}

impl Recorder {
    pub fn create(path: &Path) -> Result<Self, RecordError> {
        let file = File::create(path).map_err(|source| RecordError::Create {
            path: path.to_owned(),
            source,
        })?;
        let mut recorder = Self {
            path: path.to_owned(),
            out: BufWriter::with_capacity(1 << 20, file),
            records: 0,
        };
        recorder.write(MAGIC)?;
        Ok(recorder)
    }

    pub fn record(&mut self, record: &[u8]) -> Result<(), RecordError> {
        // Records are bounded by the ring buffer's size, far below u32::MAX.
        let len = u32::try_from(record.len()).unwrap_or(u32::MAX);
        self.write(&len.to_le_bytes())?;
        self.write(record)?;
        self.records += 1;
        Ok(())
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn flush(&mut self) -> Result<(), RecordError> {
        self.out.flush().map_err(|source| RecordError::Write {
            path: self.path.clone(),
            source,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), RecordError> {
        self.out
            .write_all(bytes)
            .map_err(|source| RecordError::Write {
                path: self.path.clone(),
                source,
            })
    }
}

/// Every record of a recording, in order.
pub fn read_recording(path: &Path) -> Result<Vec<Vec<u8>>, RecordError> {
    let read_error = |source| RecordError::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let mut input = BufReader::new(file);
    let mut magic = [0; MAGIC.len()];
    if input.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Err(RecordError::NotARecording {
            path: path.to_owned(),
        });
    }

    let mut records = Vec::new();
    loop {
        let mut len = [0; 4];
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(records),
            Err(err) => return Err(read_error(err)),
        }
        let mut record = vec![0; u32::from_le_bytes(len) as usize];
        input.read_exact(&mut record).map_err(|err| {
            if err.kind() == std::io::ErrorKind::UnexpectedEof {
                RecordError::Truncated {
                    path: path.to_owned(),
                }
            } else {
                read_error(err)
            }
        })?;
        records.push(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_in_order_and_a_cut_file_is_an_error() {
        let dir = std::env::temp_dir().join(format!("gorec-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.rec");

        let mut recorder = Recorder::create(&path).unwrap();
        recorder.record(b"first").unwrap();
        recorder.record(b"").unwrap();
        recorder.record(&[7; 300]).unwrap();
        recorder.flush().unwrap();
        assert_eq!(recorder.records(), 3);
        drop(recorder);
        let records = read_recording(&path).unwrap();
        assert_eq!(records, vec![b"first".to_vec(), Vec::new(), vec![7; 300]]);

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(matches!(
            read_recording(&path),
            Err(RecordError::Truncated { .. })
        ));
        std::fs::write(&path, b"not one").unwrap();
        assert!(matches!(
            read_recording(&path),
            Err(RecordError::NotARecording { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

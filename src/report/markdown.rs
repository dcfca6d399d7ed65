//! Aligned markdown tables for the run summary: every column as wide as its widest cell, so
//! the text reads as a table both raw and rendered.

/// How a column's cells are aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A markdown table being built.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns.
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            header: columns.iter().map(|(name, _)| cell(name)).collect(),
            align: columns.iter().map(|(_, align)| *align).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are empty, extra ones are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut row: Vec<String> = cells.iter().map(|c| cell(c)).collect();
        row.resize(self.header.len(), String::new());
        self.rows.push(row);
    }

    /// The column names.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Each column's alignment.
    pub fn align(&self) -> &[Align] {
        &self.align
    }

    /// The rows, each as wide as the header.
    pub fn rows(&self) -> &[Vec<String>] {
        &self.rows
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as markdown, ending in a newline.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|row| &row[i])
                    .chain([&self.header[i]])
                    .map(|c| c.chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(3)
            })
            .collect();
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            out.push('|');
            for ((text, width), align) in cells.iter().zip(&widths).zip(&self.align) {
                let pad = " ".repeat(width - text.chars().count());
                out.push(' ');
                match align {
                    Align::Left => {
                        out.push_str(text);
                        out.push_str(&pad);
                    }
                    Align::Right => {
                        out.push_str(&pad);
                        out.push_str(text);
                    }
                }
                out.push_str(" |");
            }
            out.push('\n');
        };
        line(&mut out, &self.header);
        out.push('|');
        for (width, align) in widths.iter().zip(&self.align) {
            out.push_str(&"-".repeat(width + 1));
            out.push(if *align == Align::Right { ':' } else { '-' });
            out.push('|');
        }
        out.push('\n');
        for row in &self.rows {
            line(&mut out, row);
        }
        out
    }
}

/// Makes text fit in one cell: no line breaks, no column separators.
pub fn cell(text: &str) -> String {
    text.replace("\r\n", " ")
        .replace(['\n', '\r'], " ")
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut table = Table::new(&[("name", Align::Left), ("n", Align::Right)]);
        table.row(vec!["a|b\nc".into(), "12345".into()]);
        table.row(vec!["x".into()]);
        assert_eq!(
            table.render(),
            "| name   |     n |\n\
             |--------|------:|\n\
             | a\\|b c | 12345 |\n\
             | x      |       |\n"
        );
    }
}

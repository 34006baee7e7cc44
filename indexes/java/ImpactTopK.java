package retriever.lucene;

import java.io.IOException;
import org.apache.lucene.index.Term;
import org.apache.lucene.search.BooleanClause;
import org.apache.lucene.search.BooleanQuery;
import org.apache.lucene.search.BoostQuery;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.ScoreDoc;
import org.apache.lucene.search.TermQuery;

/**
 * One JNI call per impact query: builds the query from primitive arrays and returns the top hits
 * packed into one int array, so Python never converts Lucene objects.
 */
public final class ImpactTopK {
  private ImpactTopK() {}

  /**
   * The top {@code n} documents for the query {@code sum_i impacts[i] x field:terms[i]}, as
   * {@code [doc0, scoreBits0, doc1, scoreBits1, ...]} (Lucene doc numbers, float scores as raw bits),
   * in Lucene's order (score, then doc number).
   */
  public static int[] search(IndexSearcher searcher, String field, int[] terms, int[] impacts, int n)
      throws IOException {
    BooleanQuery.Builder query = new BooleanQuery.Builder();
    for (int i = 0; i < terms.length; i++) {
      TermQuery term = new TermQuery(new Term(field, Integer.toString(terms[i])));
      query.add(new BoostQuery(term, impacts[i]), BooleanClause.Occur.SHOULD);
    }
    ScoreDoc[] hits = searcher.search(query.build(), n).scoreDocs;
    int[] packed = new int[2 * hits.length];
    for (int i = 0; i < hits.length; i++) {
      packed[2 * i] = hits[i].doc;
      packed[2 * i + 1] = Float.floatToRawIntBits(hits[i].score);
    }
    return packed;
  }
}

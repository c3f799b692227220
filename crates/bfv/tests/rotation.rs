//! Rotations, row swaps and inner sums against the plain slot permutations, and the errors for
//! a missing key.

use concord_bfv::params;
use concord_bfv::{
    BfvError, BfvParameters, GaloisKeys, Plaintext, PublicKey, SecretKey, ValueRange,
};

#[test]
fn rotations_swaps_and_inner_sums_permute_and_add_the_slots() {
    let p = BfvParameters::new(&params::MUL_16384).unwrap();
    let sk = SecretKey::generate(&p);
    let pk = PublicKey::generate(&sk);
    let n = p.degree();
    let half = n / 2;
    let values: Vec<i64> = (0..n as i64).map(|i| (i * 37 + 11) % 5).collect();
    let ct = pk
        .encrypt(&Plaintext::encode(&p, &values, ValueRange::counts(4)).unwrap())
        .unwrap();
    let steps = [1i64, 7, -3, 1000];
    let keys = GaloisKeys::for_rotations(&sk, &steps, true).unwrap();
    for step in steps {
        let got = sk
            .decrypt(&ct.rotate_rows(step, &keys).unwrap())
            .unwrap()
            .decode();
        for row in 0..2 {
            for c in 0..half {
                let from = (c as i64 + step).rem_euclid(half as i64) as usize;
                assert_eq!(
                    got[row * half + c],
                    values[row * half + from],
                    "step {step}"
                );
            }
        }
    }
    let swapped = sk.decrypt(&ct.swap_rows(&keys).unwrap()).unwrap().decode();
    assert_eq!(&swapped[..half], &values[half..]);
    assert_eq!(&swapped[half..], &values[..half]);
    // a step without its key
    assert!(matches!(
        ct.rotate_rows(2, &keys),
        Err(BfvError::MissingGaloisKey { .. })
    ));

    // the inner sum: every slot holds the sum of all slots
    let sum_keys = GaloisKeys::for_inner_sum(&sk).unwrap();
    assert_eq!(
        sum_keys.elements().count(),
        (n / 2).trailing_zeros() as usize + 1
    );
    let total: i64 = values.iter().sum();
    let summed = ct.inner_sum(&sum_keys).unwrap();
    assert!(sk.noise_budget(&summed).unwrap() > 100.0);
    assert_eq!(sk.decrypt(&summed).unwrap().decode(), vec![total; n]);
    assert_eq!(summed.range(), ValueRange::counts(4 * n as u64));
    // 16384 slots of up to 4: the range [0, 65536] fits t = 65537; of up to 5 it would not
    let wide = pk
        .encrypt(&Plaintext::encode(&p, &[5], ValueRange::counts(5)).unwrap())
        .unwrap();
    assert!(matches!(
        wide.inner_sum(&sum_keys),
        Err(BfvError::PlaintextOverflow { .. })
    ));
    assert!(matches!(
        GaloisKeys::generate(&sk, &[4]),
        Err(BfvError::GaloisElement { element: 4, .. })
    ));
}
